"""Synthetic motions, subjects and sessions: ranges, smoothness, subject size, frames, files."""

import json

import numpy as np
import pytest

from simspine.frames import zup_to_yup
from simspine.skeletons import spinetrack37
from simspine.synth.detector import DetectorConfig
from simspine.synth.motion import ACTIONS, RANGES, generate_motion
from simspine.synth.session import SynthConfig, make_session, write_session

CLEAN = DetectorConfig(noise_px=0, outlier_rate=0, miss_rate=0, swap_rate=0, occlusion=False)


def test_ranges_match_the_model():
    from simspine.biomech.fk import Kinematics

    kin = Kinematics()
    model_ranges = {c.name: c.range for c in kin.free_coordinates}
    assert set(model_ranges) == set(RANGES)
    for name, (lo, hi) in RANGES.items():
        assert model_ranges[name] == pytest.approx((lo, hi), abs=1e-3), name


@pytest.mark.parametrize("action", ACTIONS)
def test_motions_are_smooth_and_in_range(action):
    m = generate_motion(action, 4.0, 50.0, np.random.default_rng(1))
    assert m.n_frames == 200
    for name, v in m.coords.items():
        lo, hi = RANGES[name]
        if name not in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
            assert lo <= v.min() and v.max() <= hi, name
        # smooth: second differences small (no jumps) -- at most 0.02 rad (or m) per frame^2
        assert np.abs(np.diff(v, 2)).max() < 0.02, name
    # the lumbar spine and the neck move in every action
    assert np.ptp(m.coords["L5_S1_Flex_Ext"]) + np.ptp(m.coords["L5_S1_axial_rotation"]) > 0.01
    assert np.ptp(m.coords["neck_flexion"]) + np.ptp(m.coords["neck_rotation"]) > 0.02


def test_session_frames_subject_and_exact_projection(tmp_path):
    s = make_session(SynthConfig(action="pickup", seconds=1.0, seed=3, height_m=1.6, detector=CLEAN))
    kp = s.truth.keypoints.xyz
    sk = spinetrack37()
    # standing height ~ the subject's (head top marker at the start), feet on the floor
    assert kp[0, sk.index("Head"), 1] == pytest.approx(1.6, abs=0.05)
    feet = kp[:, sk.subset("feet"), 1]
    assert feet.min() > -0.005 and feet.min(1).max() < 0.03
    # the subject stands where the cameras look (stage), the world is the Y-up image of the rig's
    hip = kp[0, sk.index("Hip")]
    assert np.hypot(*(hip[[0, 2]] - s.rig.stage_yup[[0, 2]])) < 0.3
    np.testing.assert_allclose(zup_to_yup(s.world_keypoints), kp, atol=1e-12)
    # noise-free detections are exact projections through the written (OpenCV) cameras
    out = write_session(tmp_path / "sess", s)
    from simspine.calibration import read_calibration_toml
    from simspine.io.session import load_pose2sim_session

    cams = read_calibration_toml(out / "calibration" / "Calib_synthetic.toml")
    sess = load_pose2sim_session(out)
    assert sess.n_frames == kp.shape[0] and sess.camera_names == [c.name for c in cams]
    for c, cam in enumerate(cams):
        uv = cam.project(s.world_keypoints)
        np.testing.assert_allclose(sess.keypoints[c], uv, atol=1e-6)  # JSON keeps ~16 digits
    # ground truth files say their frame
    from simspine.io.mot import read_mot
    from simspine.io.trc import read_trc

    trc = read_trc(out / "groundtruth" / "keypoints.trc")
    assert "Y up" in trc.frame
    np.testing.assert_allclose(trc.xyz, kp, atol=1e-6)
    mot = read_mot(out / "groundtruth" / "coordinates.mot")
    assert "Y up" in mot.meta.get("frame", "")
    for name in ("L5_S1_Flex_Ext", "pelvis_tilt", "hip_flexion_r", "L3_L4_Flex_Ext"):
        np.testing.assert_allclose(np.deg2rad(mot.column(name)), s.truth.coordinate(name), atol=1e-6)
    np.testing.assert_allclose(mot.column("pelvis_ty"), s.truth.coordinate("pelvis_ty"), atol=1e-8)
    man = json.loads((out / "synth.json").read_text())
    assert man["config"]["action"] == "pickup" and "Z up" in man["frames"]["calibration"]


def test_subject_variation_and_seed():
    a = make_session(SynthConfig(seconds=0.2, seed=1, detector=CLEAN))
    b = make_session(SynthConfig(seconds=0.2, seed=1, detector=CLEAN))
    c = make_session(SynthConfig(seconds=0.2, seed=2, detector=CLEAN))
    np.testing.assert_array_equal(a.truth.keypoints.xyz, b.truth.keypoints.xyz)
    assert not np.allclose(a.truth.keypoints.xyz, c.truth.keypoints.xyz)
    s = a.truth.subject
    assert 1.5 <= s.height_m <= 1.95
    f = np.array(list(s.segment_scales.values())) / (s.height_m / 1.723)
    assert np.all(np.abs(f - 1) <= 0.05 + 1e-9) and np.ptp(f) > 0.01
    rms = np.sqrt(np.mean([np.sum(v ** 2) for v in s.marker_jitter_m.values()]))
    assert 0.006 < rms < 0.014


def test_rig_from_a_calibration_file(tmp_path):
    """Any calibration works as a rig: a ring of cameras written to TOML and read back."""
    from simspine.calibration import write_calibration_toml
    from simspine.synth.rig import ring_rig

    ring = ring_rig(3, radius=3.5)
    path = write_calibration_toml(tmp_path / "calib.toml", ring.cameras)
    s = make_session(SynthConfig(action="sway", seconds=0.2, rig=str(path), detector=CLEAN))
    assert [c.name for c in s.rig.cameras] == ["cam01", "cam02", "cam03"]
    np.testing.assert_allclose(s.rig.stage_zup, [0, 0, 0], atol=0.05)
    assert np.isfinite(s.detections.uv).all()
    for c, cam in enumerate(s.rig.cameras):
        np.testing.assert_allclose(s.detections.uv[c], cam.project(s.world_keypoints), atol=1e-9)


def test_synthesize_keeps_an_identical_session(tmp_path):
    from simspine.synth.session import synthesize

    cfg = SynthConfig(action="sway", seconds=0.2, seed=1, detector=CLEAN)
    synthesize(tmp_path / "s", cfg)
    probe = tmp_path / "s" / "groundtruth" / "keypoints.trc"
    before = probe.stat().st_mtime_ns
    synthesize(tmp_path / "s", cfg)  # same config: nothing rewritten (a pipeline on it can resume)
    assert probe.stat().st_mtime_ns == before
    synthesize(tmp_path / "s", SynthConfig(action="sway", seconds=0.1, seed=2, detector=CLEAN))
    assert probe.stat().st_mtime_ns != before
    assert json.loads((tmp_path / "s" / "synth.json").read_text())["config"]["seed"] == 2
    from simspine.io.session import load_pose2sim_session

    assert load_pose2sim_session(tmp_path / "s").n_frames == 5  # no frames left from the longer one
