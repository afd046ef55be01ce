"""`kaipiao warn score` and `kaipiao warn evaluate` on a tiny synthetic NAB-layout corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaipiao.cli.warn import warn_app

runner = CliRunner()


def _write_series(path: Path, values: list[float]) -> list[str]:
    stamps = [f"2026-01-{1 + i // 288:02d} {(i % 288) // 12:02d}:{(i % 12) * 5:02d}:00"
              for i in range(len(values))]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{t},{v}\n" for t, v in zip(stamps, values, strict=True))
    path.write_text("timestamp,value\n" + rows)
    return stamps


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    shape = [10 + 5 * math.sin(2 * math.pi * i / 288) for i in range(1500)]
    shifted = shape[:1000] + [v + 30 for v in shape[1000:]]
    stamps = _write_series(tmp_path / "data" / "synthetic" / "shift.csv", shifted)
    _write_series(tmp_path / "data" / "quiet" / "flat.csv", shape)
    windows = {"synthetic/shift.csv": [[stamps[990] + ".000000", stamps[1040] + ".000000"]],
               "quiet/flat.csv": []}  # fmt: skip
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return tmp_path


def test_score_writes_one_scored_row_per_input_row(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored.csv"
    result = runner.invoke(warn_app, ["score", str(corpus / "data/synthetic/shift.csv"),
                                      "--out", str(out), "--detector", "context"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert len(lines) == 1501
    scores = [float(line.rsplit(",", 1)[1]) for line in lines[1:]]
    assert max(scores[1000:1010]) > max(scores[:1000])


def test_evaluate_prints_the_profiles_groups_and_scoreboard(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = runner.invoke(warn_app, ["evaluate", "--data", str(corpus), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for text in ("standard", "reward_low_FP_rate", "reward_low_FN_rate", "synthetic", "CAD OSE"):
        assert text in result.output
    written = json.loads(out.read_text())
    standard = written["profiles"]["standard"]
    # The shift is found inside its window and the unchanging series raises nothing.
    assert standard["windows_found"] == 1
    assert standard["by_group"]["quiet"] == {"score": None, "false_positives": 0}
    assert standard["score"] > 70
    assert written["values"] == 3000


def test_unknown_detector_and_missing_windows_are_errors(corpus: Path, tmp_path: Path) -> None:
    result = runner.invoke(warn_app, ["evaluate", "--data", str(corpus), "--detector", "nope"])
    assert result.exit_code == 2
    result = runner.invoke(warn_app, ["evaluate", "--data", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "combined_windows.json not found" in result.output
