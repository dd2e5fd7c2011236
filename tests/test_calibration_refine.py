"""``calibrate refine``: bundle adjustment of a rig on a session's own keypoints."""

import json

import numpy as np
import pytest
from test_calibration_health import rotated, session_with

from simspine.calibration import read_calibration_toml
from simspine.cli import main
from simspine.multiview.calibration_refine import RefineOptions, refine_calibration, rotation_angle_deg
from simspine.multiview.triangulation import triangulate
from simspine.skeletons import spinetrack37
from simspine.synth.detector import DetectorConfig
from simspine.synth.session import SynthConfig, make_session


def spine_mpjpe_mm(synth, cameras) -> float:
    """Spine MPJPE (mm) of the session triangulated with ``cameras`` against the truth."""
    det = synth.detections
    res = triangulate(cameras, det.uv, det.conf)
    spine = spinetrack37().subset("spine")
    return float(np.nanmean(np.linalg.norm(res.points - synth.world_keypoints, axis=-1)[:, spine]) * 1000)


def test_noise_free_recovers_the_rotation_exactly_with_the_gauge_kept():
    exact = DetectorConfig(noise_px=0, outlier_rate=0, swap_rate=0, miss_rate=0, occlusion=False)
    synth = make_session(SynthConfig(seconds=1, seed=3, detector=exact))
    truth = synth.rig.cameras
    cams = list(truth)
    cams[2] = rotated(cams[2], 2.0)
    r = refine_calibration(session_with(synth, cams), RefineOptions(max_points=400))
    assert r.fixed_camera != truth[2].name and r.scale_camera != truth[2].name
    for c, t in zip(r.cameras, truth, strict=True):
        assert rotation_angle_deg(c.R, t.R) < 1e-3 and np.linalg.norm(c.center - t.center) < 1e-4
    f = next(c for c in r.cameras if c.name == r.fixed_camera)
    s = next(c for c in r.cameras if c.name == r.scale_camera)
    f0 = next(c for c in truth if c.name == r.fixed_camera)
    s0 = next(c for c in truth if c.name == r.scale_camera)
    np.testing.assert_array_equal(f.R, f0.R)  # the gauge: one camera held, one distance kept
    assert np.linalg.norm(s.center - f.center) == pytest.approx(np.linalg.norm(s0.center - f0.center), abs=1e-9)


@pytest.mark.parametrize("bad", [1, 3])
def test_rotated_camera_back_within_0_2_degrees(bad):
    """Default synthetic detector (3 px noise, 5% outliers, swaps, occlusion), 2 s walking."""
    synth = make_session(SynthConfig(seconds=2, seed=0))
    truth = synth.rig.cameras
    cams = list(truth)
    cams[bad] = rotated(cams[bad], 2.0)
    r = refine_calibration(session_with(synth, cams))
    assert rotation_angle_deg(cams[bad].R, truth[bad].R) == pytest.approx(2.0)
    err = rotation_angle_deg(r.cameras[bad].R, truth[bad].R)
    assert err < 0.2
    # the fixed camera is at its true pose, so the refined rig is in the true world frame (no alignment needed)
    assert truth[[c.name for c in truth].index(r.fixed_camera)] is next(c for c in r.cameras if c.name == r.fixed_camera)
    assert r.before[bad]["median_px"] > 25 and r.after[bad]["median_px"] < 4
    good, off, fixed = spine_mpjpe_mm(synth, truth), spine_mpjpe_mm(synth, cams), spine_mpjpe_mm(synth, r.cameras)
    assert off > 1.4 * good
    assert fixed < 1.2 * good


def test_cli_writes_a_pose2sim_toml(tmp_path, capsys):
    synth = make_session(SynthConfig(seconds=1, seed=1))
    cams = list(synth.rig.cameras)
    cams[0] = rotated(cams[0], 2.0)
    npz = session_with(synth, cams).save(tmp_path / "session.npz")
    out = tmp_path / "refined.toml"
    assert main(["calibrate", "refine", str(npz), "--out", str(out), "--max-points", "600"]) == 0
    text = capsys.readouterr().out
    assert "median px before" in text and "(fixed)" in text and f"wrote {out}" in text
    got = read_calibration_toml(out)
    assert [c.name for c in got] == [c.name for c in cams]
    assert rotation_angle_deg(got[0].R, synth.rig.cameras[0].R) < 0.3
    assert main(["calibrate", "refine", str(npz), "--out", str(out), "--fixed", "nope"]) == 2


def test_annotate_refines_first_and_resumes(tmp_path):
    from simspine.annotate import annotate

    synth = make_session(SynthConfig(seconds=1, seed=2))
    cams = list(synth.rig.cameras)
    cams[3] = rotated(cams[3], 2.0)
    npz = session_with(synth, cams).save(tmp_path / "session.npz")
    kw = dict(biomech=False, report=False, progress=False, log=lambda m: None,
              refine_calibration=RefineOptions(max_points=600))
    res = annotate(npz, tmp_path / "out", **kw)
    info = json.loads((tmp_path / "out" / "calibration_refined.json").read_text())
    assert info["median_px_before"][cams[3].name] > 25 and info["median_px_after"][cams[3].name] < 4
    assert res.summary["stages"]["calibrate"]["rotation_change_deg"][cams[3].name] == pytest.approx(2.0, abs=0.3)
    assert res.summary["stages"]["triangulate"]["warnings"] == []  # triangulated with the refined rig
    again = annotate(npz, tmp_path / "out", **kw)
    assert "calibrate" in again.skipped and "triangulate" in again.skipped
