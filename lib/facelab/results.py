"""A notebook's results: metrics beside the paper's numbers, checks, and ``metrics.json``.

Every notebook ends with::

    report = Report("05_au_guided_fer", profile=PROFILE, dataset="synth", out_dir=OUT)
    report.metric("accuracy", acc, paper=0.8895, paper_dataset="RAF-DB", headline=True)
    report.check("learned_above_chance", acc > 3 / 7)
    report.table()      # shown in the notebook: ours | paper | dataset | profile
    report.save()       # figures/<notebook>/metrics.json (atomic)

The JSON layout (the same for every notebook; README.md, "Where things land"): ``{"notebook", "profile", "dataset", "device", "wall_s",
"metrics", "paper", "paper_dataset", "checks", "headline"}``; ``headline`` names the one metric
that the results page puts in its first table (``metric(..., headline=True)``). A smoke profile's numbers are never a
reproduction; :meth:`Report.table` says so in its caption.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from .cache import atomic_write_bytes


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        import torch

        if isinstance(v, torch.Tensor):
            v = v.item()
    except ImportError:  # pragma: no cover
        pass
    v = float(v)
    return None if math.isnan(v) else v


class Report:
    def __init__(self, notebook: str, *, profile: str, dataset: str, out_dir: str | Path,
                 device: str | None = None) -> None:
        self.notebook, self.profile, self.dataset = notebook, profile, dataset
        self.out_dir = Path(out_dir)
        if device is None:
            from .config import device as _device

            device = str(_device())
        self.device = device
        self.started = time.time()
        self.metrics: dict[str, float | None] = {}
        self.paper: dict[str, float] = {}
        self.paper_dataset: dict[str, str] = {}
        self.checks: dict[str, bool] = {}
        self.caps: dict[str, Any] = {}
        self.headline: str | None = None

    def record_caps(self, **params: Any) -> dict[str, Any]:
        """Note the parameters that cap or change a profile (``max_train``, ``epochs``, ...; ``None``
        values are dropped): they go into metrics.json and the table's caption, beside every number."""
        self.caps.update({k: v if isinstance(v, (int, float, str, bool)) else repr(v)
                          for k, v in params.items() if v is not None})
        return dict(self.caps)

    def metric(self, name: str, value: Any, *, paper: float | None = None,
               paper_dataset: str | None = None, headline: bool = False) -> float | None:
        """Record ``name``; ``headline=True`` makes it the notebook's one row in the results
        page's first table (one per notebook: a second headline is an error)."""
        v = _num(value)
        if headline:
            if self.headline not in (None, name):
                raise ValueError(f"{self.notebook}: headline already set to {self.headline!r}, "
                                 f"cannot also make {name!r} the headline (one per notebook)")
            self.headline = name
        self.metrics[name] = v
        if paper is not None:
            self.paper[name] = float(paper)
            if paper_dataset:
                self.paper_dataset[name] = paper_dataset
        return v

    def check(self, name: str, ok: Any) -> bool:
        self.checks[name] = bool(ok)
        return self.checks[name]

    def rows(self) -> list[dict[str, Any]]:
        return [{"metric": k, "ours": v, "paper": self.paper.get(k), "paper dataset": self.paper_dataset.get(k, ""),
                 "our dataset": self.dataset, "profile": self.profile} for k, v in self.metrics.items()]

    def table(self):
        """Ours vs the paper's numbers: a styled pandas table inline in Jupyter, else markdown text."""
        note = ("smoke profile: synthetic data and tiny models; a check that the pipeline learns, "
                "NOT a reproduction of the paper" if self.profile == "smoke" else f"profile {self.profile}")
        if self.caps:
            note += "; caps: " + ", ".join(f"{k}={v}" for k, v in self.caps.items())
        cols = ["metric", "ours", "paper", "paper dataset", "our dataset", "profile"]
        try:
            import pandas as pd
        except ImportError:  # a bare GPU machine: plain markdown
            return self.markdown()
        df = pd.DataFrame(self.rows(), columns=cols).set_index("metric")
        return df.style.format(precision=4, na_rep="-").set_caption(note)

    def markdown(self) -> str:
        lines = ["| metric | ours | paper | paper dataset | our dataset | profile |", "|---|---|---|---|---|---|"]
        for r in self.rows():
            fmt = ["-" if r[k] is None else (f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]))
                   for k in ("ours", "paper")]
            lines.append(f"| {r['metric']} | {fmt[0]} | {fmt[1]} | {r['paper dataset']} | {r['our dataset']} | {r['profile']} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"notebook": self.notebook, "profile": self.profile, "dataset": self.dataset,
                "device": self.device, "wall_s": round(time.time() - self.started, 2), "caps": self.caps,
                "metrics": self.metrics, "paper": self.paper, "paper_dataset": self.paper_dataset,
                "checks": self.checks, "headline": self.headline}

    def save(self) -> Path:
        path = self.out_dir / "metrics.json"
        atomic_write_bytes(path, json.dumps(self.to_dict(), indent=2).encode())
        return path

    def print_checks(self, names: list[str]) -> None:
        """The ``# NBVAL_CHECK_OUTPUT`` cell's body: one ``name: True/False`` line per listed check.

        The list is literal in the cell (``CHECKS = [...]``) so the test harness knows the
        expected output without running anything; a listed check never recorded prints False.
        A recorded check missing from the list is an error: ``facelab run`` fails a run on any
        False check, listed or not, so an unlisted one would gate runs while the notebook's
        Checks list says it does not (a value to report, not assert, is a ``metric``).
        """
        for k in names:
            print(f"{k}: {self.checks.get(k, False)}")
        unlisted = sorted(set(self.checks) - set(names))
        if unlisted:
            raise ValueError(f"{self.notebook}: checks recorded but not in CHECKS: {', '.join(unlisted)}; "
                             "list them (facelab run asserts every recorded check) or record them with report.metric")
