"""What a real session's annotate run shows: every warning of the biomechanical core (plausibility
checks, undetermined coordinates) in the annotate summary and report, not only in model/."""

from __future__ import annotations

import json
from types import SimpleNamespace

from simspine.annotate import _model_checks, format_summary
from simspine.annotate_report import run_warnings

MARKER_WARNING = ("large IK marker error (RMS over the trial): REar 84 mm, Nose 75 mm; the median marker's RMS is "
                  "31.6 mm")


def _model_dir(tmp_path, plausibility, undetermined):
    d = tmp_path / "model"
    d.mkdir()
    (d / "summary.json").write_text(json.dumps({
        "plausibility": plausibility,
        "warnings": ["a scaling warning"] + [w["message"] for w in plausibility],
        "undetermined_coordinates": {"coordinates": undetermined, "held_at": {c: 0.0 for c in undetermined},
                                     "units": "deg (translations m)"}}))
    return d


def test_plausibility_and_undetermined_reach_summary_and_report(tmp_path):
    checks = [{"code": "marker_error", "message": MARKER_WARNING, "details": {"REar": 0.084}},
              {"code": "at_bound", "message": "arm_rot_l is at its lower bound (-90.0 deg) in 8% of frames",
               "details": {}}]
    d = _model_dir(tmp_path, checks, ["wrist_flex_r", "wrist_dev_r"])
    res = SimpleNamespace(scaling={"warnings": ["a scaling warning"]}, warnings=[])
    mc = _model_checks(d, res)
    assert mc["checks"] == checks and mc["undetermined_coordinates"] == ["wrist_flex_r", "wrist_dev_r"]
    assert mc["warnings"][:2] == [MARKER_WARNING, checks[1]["message"]] and len(mc["warnings"]) == 3
    assert "wrist_flex_r 0, wrist_dev_r 0" in mc["warnings"][2] and "prior" in mc["warnings"][2]
    assert "a scaling warning" not in mc["warnings"]  # the scale stage shows that one

    summary = {"session": "S", "out_dir": "O", "frame": "opensim-ground (Y up), metres",
               "stages": {"scale": {"factors": {"head": 0.97}, "height_estimate_m": 1.65, "mass_kg": 70.0,
                                    "warnings": ["a scaling warning"]},
                          "plausibility": mc}}
    text = format_summary(summary)
    assert "plausibility: 2 warning(s), undetermined coordinates: wrist_flex_r, wrist_dev_r" in text
    assert f"  warning: {MARKER_WARNING}" in text and "  warning: arm_rot_l is at its lower bound" in text
    found = run_warnings(summary)
    assert "scale: a scaling warning" in found and f"plausibility: {MARKER_WARNING}" in found
    assert any(w.startswith("plausibility: 2 coordinate(s) no marker moves") for w in found)


def test_clean_model_run_adds_no_warning(tmp_path):
    d = _model_dir(tmp_path, [], [])
    mc = _model_checks(d, SimpleNamespace(scaling={}, warnings=["stale"]))
    assert mc["warnings"] == [] and mc["undetermined_coordinates"] == []
    summary = {"session": "S", "out_dir": "O", "frame": "f", "stages": {"plausibility": mc}}
    assert "plausibility: 0 warning(s), undetermined coordinates: none" in format_summary(summary)
    assert run_warnings(summary) == []
