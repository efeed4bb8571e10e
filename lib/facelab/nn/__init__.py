"""Blocks shared by the notebooks: Mamba's selective scan and the cross-scan orders of SS2D.

Nothing here imports mamba-ssm at import time (it crashes without CUDA); the scan loads its
kernel lazily, on CUDA only (Triton's likewise), and numba (the compiled CPU scan) lazily on first use.
"""
from facelab.nn.scan import (default_chunk_size, mamba_ssm_available, numba_available,
                             selective_scan, selective_scan_reference, triton_available)
from facelab.nn.scan_orders import scan_orders

__all__ = ["selective_scan", "selective_scan_reference", "mamba_ssm_available", "numba_available", "triton_available",
           "default_chunk_size", "scan_orders"]
