"""Cross-scan orders for 2-D selective scans (VMamba's SS2D and its variants).

An SS2D block flattens an h x w feature map into 1-D sequences along several routes, scans each,
and maps the results back. Here each route is an index permutation of the row-major flattening
``k = i * w + j``: ``seq = x.flatten(-2)[..., order]`` and back ``x_flat = seq[..., inverse]``.
The block itself belongs to the notebook; this only supplies the bookkeeping.
"""
from __future__ import annotations

from typing import Dict, Tuple, Union

import torch

__all__ = ["scan_orders", "ORDER_NAMES"]

ORDER_NAMES = ("rows", "cols", "diag", "antidiag", "rows_rev", "cols_rev", "diag_rev", "antidiag_rev")


def scan_orders(h: int, w: int, device: Union[torch.device, str, None] = None
                ) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """The 8 routes over an h x w grid, name -> (order, inverse), both int64 of length h*w.

    rows: row by row (row-major); cols: column by column; diag: along the diagonals i - j =
    const, from the top-right corner to the bottom-left, each top to bottom; antidiag: along
    i + j = const from the top-left corner, each top to bottom; ``*_rev``: the same routes walked
    backwards (the reverse scans that give every position context from both sides).
    """
    if h < 1 or w < 1:
        raise ValueError(f"grid must be at least 1 x 1, got {h} x {w}")
    i = torch.arange(h).repeat_interleave(w)  # row of each row-major position
    j = torch.arange(w).repeat(h)             # column
    n = h * w
    # A stable sort on a primary key with ties broken by a secondary key: key * n + secondary.
    keys = {
        "rows": i * w + j,
        "cols": j * h + i,
        "diag": (i - j + (w - 1)) * n + i,
        "antidiag": (i + j) * n + i,
    }
    out: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    for name, key in keys.items():
        order = torch.argsort(key)
        out[name] = order
        out[name + "_rev"] = order.flip(0)
    return {name: (out[name].to(device), torch.argsort(out[name]).to(device)) for name in ORDER_NAMES}
