"""FEC-Bench test.json reader on generated fixtures: missing videos counted, malformed entries one line."""
from __future__ import annotations

import json

import pytest

from facelab.data.fecbench import FECBenchError, read_fecbench


def _write(tmp_path, entries, videos=("DFEW/1.mp4",)):
    for v in videos:
        (tmp_path / v).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / v).write_bytes(b"\x00")
    path = tmp_path / "test.json"
    path.write_text(json.dumps(entries))
    return path


def test_reads_entries_and_counts_missing_videos(tmp_path):
    path = _write(tmp_path, [{"id": "a", "video": "DFEW/1.mp4", "caption": " A person smiles. "},
                             {"id": 7, "video": "MAFW/9.mp4", "caption": "At the beginning, she frowns."}])
    bench = read_fecbench(path, tmp_path)
    assert bench.total == 2 and len(bench) == 1 and bench.missing == ["7"]
    item = bench.items[0]
    assert item.id == "a" and item.caption == "A person smiles." and item.path == tmp_path / "DFEW/1.mp4"
    assert "1 missing" in bench.summary()
    with pytest.raises(FECBenchError, match="not found"):
        read_fecbench(path, tmp_path, require_videos=True)


@pytest.mark.parametrize("entry, message", [
    ({"id": "c", "video": "DFEW/1.mp4"}, "has no 'caption'"),
    ({"id": "c", "caption": "x"}, "has no 'video'"),
    ({"id": "c", "video": "DFEW/1.mp4", "caption": ""}, "'caption' must be a non-empty string"),
    ({"id": "c", "video": 3, "caption": "x"}, "'video' must be"),
    (["c", "DFEW/1.mp4", "x"], "expected an object"),
])
def test_malformed_entry_is_one_line(tmp_path, entry, message):
    path = _write(tmp_path, [entry])
    with pytest.raises(FECBenchError, match=message) as e:
        read_fecbench(path, tmp_path)
    assert "\n" not in str(e.value) and "entry 0" in str(e.value)


def test_duplicate_ids_bad_json_and_bad_paths(tmp_path):
    path = _write(tmp_path, [{"id": "a", "video": "DFEW/1.mp4", "caption": "x"}] * 2)
    with pytest.raises(FECBenchError, match="duplicate id"):
        read_fecbench(path, tmp_path)
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(FECBenchError, match="not valid JSON"):
        read_fecbench(tmp_path / "broken.json", tmp_path)
    with pytest.raises(FECBenchError, match="no such file"):
        read_fecbench(tmp_path / "nope.json", tmp_path)
    with pytest.raises(FECBenchError, match="no such folder"):
        read_fecbench(path, tmp_path / "nope")
