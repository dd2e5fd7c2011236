"""``simspine annotate --batch DIR``: sessions as Dask tasks, failures recorded, finished sessions skipped."""

from __future__ import annotations

import json
import shutil

import pytest

from simspine.batch import BatchSummary, SessionOutcome, find_sessions, root_frame_rate, session_calibration
from simspine.cli import main
from simspine.synth.session import SynthConfig, synthesize


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    """Two tiny synthetic sessions, one without calibration, and a folder that is not a session."""
    root = tmp_path_factory.mktemp("batch")
    for i, name in enumerate(("walk_a", "walk_b")):
        synthesize(root / name, SynthConfig(seconds=0.3, seed=i))
    shutil.copytree(root / "walk_a" / "pose", root / "broken" / "pose")
    (root / "notes").mkdir()
    return root


def _mtimes(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_find_sessions_and_root_calibration(batch_root, tmp_path):
    sessions, ignored = find_sessions(batch_root)
    assert [s.name for s in sessions] == ["broken", "walk_a", "walk_b"]
    assert ignored == ["notes"]
    assert session_calibration(batch_root / "walk_a", batch_root) is None  # its own
    assert session_calibration(batch_root / "broken", batch_root) is None  # none anywhere: annotate says so
    # Pose2Sim's layout: the calibration one level up serves trials without their own
    root = tmp_path / "project"
    shutil.copytree(batch_root / "walk_a" / "calibration", root / "calibration")
    shutil.copytree(batch_root / "walk_a" / "pose", root / "trial1" / "pose")
    sessions, ignored = find_sessions(root)
    assert [s.name for s in sessions] == ["trial1"] and ignored == []
    assert session_calibration(root / "trial1", root).endswith("Calib_synthetic.toml")
    assert root_frame_rate(root / "trial1", root) is None
    (root / "Config.toml").write_text("[project]\nframe_rate = 60\n")
    assert root_frame_rate(root / "trial1", root) == 60.0
    assert root_frame_rate(root / "trial1", root, fps=25.0) == 25.0
    assert root_frame_rate(batch_root / "walk_a", root) is None  # its own Config.toml


def test_summary_text():
    s = BatchSummary("in", "out", [SessionOutcome("a", "in/a", "out/a", "done", 20, 0.975, seconds=3.2),
                                   SessionOutcome("b", "in/b", "out/b", "failed", error="no calibration found")])
    t = s.text()
    assert "97.5%" in t and "FAILED b: no calibration found" in t
    assert [o.name for o in s.failed] == ["b"]


def test_batch_failures_and_resume(batch_root, tmp_path, capsys):
    root = shutil.copytree(batch_root, tmp_path / "root")
    out = tmp_path / "out"
    argv = ["annotate", "--batch", str(root), "--out", str(out), "--workers", "2", "--front-end-only",
            "--no-report", "--quiet"]
    assert main(argv) == 1  # one session failed
    text = capsys.readouterr().out
    assert "FAILED broken:" in text and "no calibration found" in text
    assert "2 annotated, 0 up to date (skipped), 1 failed" in text
    summary = json.loads((out / "batch_summary.json").read_text())
    by = {s["name"]: s for s in summary["sessions"]}
    assert set(by) == {"broken", "walk_a", "walk_b"} and summary["ignored"] == ["notes"]
    assert by["broken"]["status"] == "failed" and "no calibration found" in by["broken"]["error"]
    for n in ("walk_a", "walk_b"):
        assert by[n]["status"] == "done" and by[n]["frames"] == 15  # 0.3 s at 50 Hz
        assert 0.9 <= by[n]["spine_observed"] <= 1.0
        assert set(by[n]["regions_observed"]) == {"lumbar", "thoracic", "cervical"}
        stages = json.loads((out / n / "stages.json").read_text())
        assert set(stages) == {"triangulate", "filter", "merge"}
    assert "no calibration found" in (out / "broken" / "annotate.log").read_text()
    assert not (out / "broken" / ".batch.done.json").exists()

    # re-run: the finished sessions are not touched (no file rewritten), the broken one fails again
    before = {n: _mtimes(out / n) for n in ("walk_a", "walk_b")}
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert "0 annotated, 2 up to date (skipped), 1 failed" in text
    assert {n: _mtimes(out / n) for n in ("walk_a", "walk_b")} == before

    # the broken session fixed (calibration and frame rate one level up, Pose2Sim's layout): only it
    # runs; the others stay untouched
    shutil.copytree(root / "walk_a" / "calibration", root / "calibration")
    shutil.copy(root / "walk_a" / "Config.toml", root / "Config.toml")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "1 annotated, 2 up to date (skipped), 0 failed" in text
    assert "calibration" not in json.loads((out / "batch_summary.json").read_text())["ignored"]
    assert {n: _mtimes(out / n) for n in ("walk_a", "walk_b")} == before
    assert json.loads((out / "broken" / "stages.json").read_text()).keys() == {"triangulate", "filter", "merge"}


def test_batch_usage_errors(tmp_path, capsys):
    assert main(["annotate", "--out", str(tmp_path / "o")]) == 2
    assert main(["annotate", str(tmp_path), "--batch", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert main(["annotate", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "2"]) == 2
    assert main(["annotate", "--batch", str(tmp_path), "--out", str(tmp_path / "o")]) == 2  # no sessions in it
    err = capsys.readouterr().err
    assert "give either SESSION or --batch DIR" in err and "--workers and --scheduler go with --batch" in err
    assert "no sessions found" in err
