"""FEC-Bench (facial expression captioning) test annotations: ``test.json`` + your video copies.

The benchmark of Zhao et al., *Facial Dynamics in Video* (arXiv 2501.07978), ships only its
annotations: ``test.json`` is a list of ``{"id", "video", "caption"}`` entries, where
``video`` is a path relative to the source datasets (CAER, RAVDESS, DFEW, MER24, MAFW,
AFEW-VA, FERV39k), which are not redistributed. :func:`read_fecbench` pairs every entry with
``<video_root>/<video>``:

* an entry whose video file is missing is counted (``missing``) and skipped;
* a malformed entry (not an object, no ``caption``, a non-string field, an empty caption, a
  duplicate ``id``) raises :class:`FECBenchError` with one line naming the entry.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FECBenchError", "FECItem", "FECBench", "read_fecbench"]


class FECBenchError(ValueError):
    """A test.json that does not have FEC-Bench's layout; the message names the entry."""


@dataclass(frozen=True)
class FECItem:
    id: str
    video: str          # as written in test.json
    path: Path          # <video_root>/<video>
    caption: str


@dataclass
class FECBench:
    items: list[FECItem]
    total: int                                   # entries in test.json
    missing: list[str] = field(default_factory=list)   # ids whose video is not under video_root

    def __len__(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        return (f"FEC-Bench: {self.total} entries, {len(self.items)} with a video, "
                f"{len(self.missing)} missing (skipped)")


def read_fecbench(json_path, video_root, *, require_videos: bool = False) -> FECBench:
    """Read ``json_path`` (FEC-Bench's ``test.json``) and locate each video under ``video_root``.

    Missing videos are counted and skipped (``require_videos=True`` makes the first one an
    error instead). Malformed entries raise :class:`FECBenchError`."""
    jp, root = Path(json_path).expanduser(), Path(video_root).expanduser()
    if not jp.is_file():
        raise FECBenchError(f"{jp}: no such file (expected FEC-Bench's test.json)")
    if not root.is_dir():
        raise FECBenchError(f"{root}: no such folder (expected the root the 'video' paths are relative to)")
    try:
        data = json.loads(jp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FECBenchError(f"{jp}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise FECBenchError(f"{jp}: expected a list of {{id, video, caption}} entries, got {type(data).__name__}")
    items, missing, seen = [], [], set()
    for k, e in enumerate(data):
        where = f"{jp.name} entry {k}"
        if not isinstance(e, dict):
            raise FECBenchError(f"{where}: expected an object with id, video, caption, got {type(e).__name__}")
        if "id" in e:
            where += f" (id {e['id']!r})"
        for key in ("id", "video", "caption"):
            if key not in e:
                raise FECBenchError(f"{where}: has no {key!r} (keys: {', '.join(map(str, e)) or 'none'})")
        vid, video, cap = e["id"], e["video"], e["caption"]
        if not isinstance(vid, (str, int)) or isinstance(vid, bool):
            raise FECBenchError(f"{where}: 'id' must be a string or int, got {type(vid).__name__}")
        if not isinstance(video, str) or not video.strip():
            raise FECBenchError(f"{where}: 'video' must be a non-empty relative path string, got {video!r}")
        if not isinstance(cap, str) or not cap.strip():
            raise FECBenchError(f"{where}: 'caption' must be a non-empty string, got {cap!r}")
        vid = str(vid)
        if vid in seen:
            raise FECBenchError(f"{where}: duplicate id {vid!r}")
        seen.add(vid)
        path = root / video
        if not path.is_file():
            if require_videos:
                raise FECBenchError(f"{where}: video {path} not found")
            missing.append(vid)
            continue
        items.append(FECItem(vid, video, path, cap.strip()))
    return FECBench(items, len(data), missing)
