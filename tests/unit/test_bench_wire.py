"""``memup bench wire`` on a small synthetic frames file, and without the Two-Colors env."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from tests.unit.wire_samples import synthetic_frames


def test_json_reports_every_codec_and_message(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "frames.npy"
    np.save(path, synthetic_frames(130))
    assert main(["bench", "wire", "--frames", str(path), "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data"]["frames"] == 130 and out["data"]["frame_shape"] == [3, 64, 112]
    rows = {(r["message"], r["codec"], r["level"]): r for r in out["results"]}
    assert set(rows) == {(m, c, lv) for m in ("fragment", "segment")
                         for c, lv in (("none", None), ("lz4", None), ("zstd", 1), ("zstd", 3))}
    assert rows["fragment", "none", None]["messages"] == 1  # 130 frames: one full fragment
    assert rows["segment", "none", None]["messages"] == 6
    for r in out["results"]:
        assert r["bytes_per_step"] > 0 and r["encode_us"] > 0 and r["decode_mb_s"] > 0
    assert rows["fragment", "zstd", 3]["ratio"] > rows["fragment", "none", None]["ratio"]


def test_table_output_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "frames.npy"
    np.save(path, synthetic_frames(128))
    assert main(["bench", "wire", "--frames", str(path), "--repeats", "1",
                 "--codecs", "none,zstd:-3"]) == 0
    assert "segment x20     zstd:-3" in capsys.readouterr().out
    np.save(path, synthetic_frames(20))
    with pytest.raises(SystemExit, match="at least 128 frames"):
        main(["bench", "wire", "--frames", str(path), "--codecs", "none"])
    with pytest.raises(SystemExit, match="unknown wire codec"):
        main(["bench", "wire", "--frames", str(path), "--codecs", "gzip"])
    np.save(path, np.zeros((4, 5), np.float32))
    with pytest.raises(SystemExit, match="uint8"):
        main(["bench", "wire", "--frames", str(path)])


def test_without_the_env_it_asks_for_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tasks.two_colors.env", None)  # import fails
    with pytest.raises(SystemExit, match=r"--frames FILE\.npy"):
        main(["bench", "wire", "--json"])
