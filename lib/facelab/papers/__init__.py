"""Modules generated from the notebooks' ``export`` cells (``python -m facelab export``).

``facelab.papers.fer_yolo_mamba`` holds notebook 01's detector, and so on: one module per notebook
that exports, named after the notebook without its number. Benchmarks and tests import these;
the notebooks stay the place where the code is written and read. Never edit them by hand:
``tests/test_export.py`` fails when one differs from its notebook.
"""
