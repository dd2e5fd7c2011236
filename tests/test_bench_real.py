"""simspine bench real: its metrics on known geometry, and the Pose2Sim runner against the truth."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from simspine.bench import real
from simspine.bench.pose2sim_runner import halpe26_points, run_pose2sim_triangulation, settings_for
from simspine.calibration import h36m_cameras
from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.frames import zup_to_yup
from simspine.io.session import Session2D
from simspine.skeletons import spinetrack37


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


NAMES = ["LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee",
         "LAnkle", "RAnkle"]


def _skeleton():
    rng = np.random.default_rng(0)
    return rng.uniform(-0.4, 0.4, (len(NAMES), 3)) + np.array([0, 0, 1.0])


def test_limb_length_sd_of_a_rigid_skeleton_is_zero():
    base = _skeleton()
    T = 40
    xyz = np.stack([base @ (_rot_z(0.1 * t) @ _rot_x(0.05 * t)).T + [0.01 * t, -0.02 * t, 0.003 * t]
                    for t in range(T)])
    per = real.limb_length_sd(xyz, NAMES)
    assert set(per) == {lab for lab, _, _ in real.LIMBS}
    assert max(per.values()) < 1e-9
    assert real.mean_limb_sd(per) < 1e-9


def test_limb_length_sd_of_an_alternating_limb_is_its_amplitude():
    T, d = 30, 0.012  # +-12 mm
    xyz = np.tile(_skeleton(), (T, 1, 1))
    i_sh, i_el = NAMES.index("LShoulder"), NAMES.index("LElbow")
    u = xyz[0, i_el] - xyz[0, i_sh]
    u /= np.linalg.norm(u)
    xyz[:, i_el] += (d * (-1.0) ** np.arange(T))[:, None] * u
    per = real.limb_length_sd(xyz, NAMES)
    assert per["upper arm L"] == pytest.approx(12.0, abs=1e-6)
    others = [v for k, v in per.items() if k not in ("upper arm L", "forearm L")]
    assert max(others) < 1e-9
    assert per["forearm L"] > 0  # the elbow moved, so the forearm changes too
    # a limb whose end is missing in some frames is measured on the others; absent names give NaN
    xyz[::2, i_el] = np.nan
    assert real.limb_length_sd(xyz, NAMES)["upper arm L"] < 1e-9  # only the -d frames remain
    assert np.isnan(real.limb_length_sd(xyz[:, :2], NAMES[:2])["thigh L"])


def test_jitter_of_constant_velocity_is_zero_and_of_constant_acceleration_is_the_acceleration():
    T = 50
    t = np.arange(T, dtype=float)[:, None, None]
    x0 = _skeleton()[None]
    v = np.array([0.01, -0.02, 0.005])
    assert real.jitter_rms(x0 + v * t) < 1e-9
    a = np.array([0.003, 0.004, 0.0])  # |a| = 5 mm/frame^2
    assert real.jitter_rms(x0 + 0.5 * a * t ** 2) == pytest.approx(5.0, rel=1e-9)
    # missing positions leave their triplets out instead of poisoning the mean
    xyz = x0 + v * t + 0 * t
    xyz[10, 3] = np.nan
    xyz[20:25, 5] = [0.5, 0.5, 0.5]  # a jump, then a constant stretch: jitter > 0
    assert np.isfinite(real.jitter_rms(xyz)) and real.jitter_rms(xyz) > 0
    assert np.isnan(real.jitter_rms(xyz[:2]))


def _views(T=20, K=5, seed=1):
    cams = h36m_cameras("S9")
    rng = np.random.default_rng(seed)
    X = rng.uniform([-0.5, -0.5, 0.2], [0.5, 0.5, 1.8], (T, K, 3))  # Z-up world, metres
    uv = np.stack([c.project(X) for c in cams])
    conf = np.full(uv.shape[:3], 0.9)
    return cams, X, uv, conf


def test_reprojection_median_of_exact_projections_is_zero_and_an_offset_is_measured():
    cams, X, uv, conf = _views()
    err = real.reprojection_errors(cams, X, uv, conf)
    assert err.shape == uv.shape[:3]
    assert np.nanmax(err) < 1e-6
    uv2 = uv.copy()
    uv2[1] += [3.0, 4.0]  # 5 px in camera 1
    conf[2, :, 0] = 0.1    # under the threshold: not measured
    err = real.reprojection_errors(cams, X, uv2, conf)
    assert real.median_or_nan(err[1]) == pytest.approx(5.0, abs=1e-6)
    assert real.median_or_nan(err[0]) < 1e-6
    assert np.isnan(err[2, :, 0]).all() and np.isfinite(err[2, :, 1:]).all()
    Xm = X.copy()
    Xm[3, 2] = np.nan  # a missing 3D point is not measured
    assert np.isnan(real.reprojection_errors(cams, Xm, uv, conf)[:, 3, 2]).all()


def test_detected_and_reconstructed_shares():
    conf = np.zeros((3, 4, 2))
    uv = np.zeros((3, 4, 2, 2))
    conf[:2, :, 0] = 0.9          # keypoint 0: 2 views every frame -> detected
    conf[0, :, 1] = 0.9           # keypoint 1: one confident view...
    conf[1, :, 1] = 0.2           # ...and one under the threshold -> not detected
    conf[2, :2, 1] = 0.5          # in frames 0-1 also by camera 2 -> detected...
    uv[2, 0, 1] = np.nan          # ... but in frame 0 camera 2's point is missing: not detected
    det = real.detected_mask(conf, uv)
    assert det.tolist() == [[True, False], [True, True], [True, False], [True, False]]
    xyz = np.zeros((4, 2, 3))
    xyz[1, 0] = np.nan
    assert real.reconstructed_share(xyz, det) == pytest.approx(4 / 5)


def test_tool_figures_of_exact_points_are_zero_error_and_full_share():
    cams, X, uv, conf = _views(T=12, K=len(NAMES))
    X[:] = X[0]  # a still skeleton: no jitter, constant limbs
    uv = np.stack([c.project(X) for c in cams])
    f = real.tool_figures(cams, zup_to_yup(X), NAMES, uv, conf)
    assert f["reconstructed_share"] == 1.0
    assert f["reproj_median_px"] < 1e-6
    assert max(f["reproj_median_px_per_camera"].values()) < 1e-6
    assert f["limb_length_sd_mean_mm"] < 1e-9 and f["jitter_rms_mm_per_frame2"] < 1e-9


def test_halpe26_names_are_spinetrack37_names():
    names = spinetrack37().names
    pts = halpe26_points()
    assert len(pts) == 22  # the HALPE_26 tree has no eyes or ears
    for name, hid in pts:
        assert names[hid] == name  # HALPE_26's first 26 ids are SpineTrack-37's, same order


# ---- Pose2Sim runner on a synthetic session ---------------------------------------------------
@pytest.fixture(scope="module")
def clean_session():
    """1 s of synthetic motion seen without noise by Human3.6M's cameras (their distortion removed,
    since Pose2Sim's default ignores distortion), exact 2D, as a Session2D; plus the truth (Y up)."""
    from simspine.synth.detector import DetectorConfig
    from simspine.synth.session import SynthConfig, make_session

    det = DetectorConfig(noise_px=0, outlier_rate=0, miss_rate=0, swap_rate=0, occlusion=False)
    s = make_session(SynthConfig(action="pickup", seconds=1.0, seed=2, detector=det))
    cams = [Camera(c.name, c.size, c.K, np.zeros(5), c.R, c.t) for c in s.rig.cameras]
    X = s.world_keypoints
    uv = np.stack([c.project(X) for c in cams])
    T = X.shape[0]
    conf = np.full(uv.shape[:3], 0.9)
    fps = s.config.fps
    sess = Session2D(cams, uv, conf, np.arange(T) / fps, list(spinetrack37().names), "SpineTrack-37", fps,
                     meta={"source": "synthetic"})
    return sess, s.truth.keypoints


def test_pose2sim_trc_read_back_agrees_with_the_truth(clean_session):
    sess, truth = clean_session
    res = run_pose2sim_triangulation(sess, settings_for())
    m = res.markers
    assert m.n_frames == sess.n_frames
    assert m.names == [n for n, _ in halpe26_points()]
    np.testing.assert_allclose(m.time, sess.timestamps, atol=1e-9)
    gt = truth.xyz[:, [truth.names.index(n) for n in m.names]]  # truth TRC: Y up, metres
    err_mm = np.linalg.norm(m.xyz - gt, axis=-1) * 1000
    assert np.isfinite(err_mm).all()
    assert err_mm.max() < 1.0, err_mm.max()
    # a one-frame shift or swapped axes would be centimetres off
    assert (np.linalg.norm(m.xyz[1:] - gt[:-1], axis=-1) * 1000).mean() > 3 * err_mm.mean() + 1.0
    assert res.settings["triangulation"]["interpolation"] == "none"


def test_compare_on_exact_2d(clean_session):
    sess, _ = clean_session
    r = real.compare(sess)
    s, p = r["simspine"], r["pose2sim"]
    assert s["detected_keypoint_frames"] == p["detected_keypoint_frames"] == sess.n_frames * 22
    assert s["reconstructed_share"] == 1.0 and p["reconstructed_share"] == 1.0
    assert s["reproj_median_px"] < 0.05 and p["reproj_median_px"] < 0.05
    # both tools find the same points: same limb variation and jitter
    assert s["limb_length_sd_mean_mm"] == pytest.approx(p["limb_length_sd_mean_mm"], abs=0.1)
    assert s["jitter_rms_mm_per_frame2"] == pytest.approx(p["jitter_rms_mm_per_frame2"], abs=0.1)
    assert r["targets"]["reconstructed_share_ge_0.9"]
    text = real.format_result(r)
    assert "Pose2Sim" in text and "limb-length SD" in text


def test_run_writes_bench_real_json(clean_session, tmp_path, capsys):
    sess, _ = clean_session
    path = sess.save(tmp_path / "session.npz")
    args = argparse.Namespace(session=str(path), out=str(tmp_path / "out"), pose2sim_gap_filling=True, fps=None)
    assert real.run(args) == 0
    printed = capsys.readouterr().out
    assert "reconstructed %" in printed and "PASS" in printed
    r = json.loads((tmp_path / "out" / "bench_real.json").read_text())
    assert r["pose2sim_settings"]["triangulation"]["interpolation"] == "linear"
    assert r["simspine"]["reconstructed_share"] == 1.0
    assert set(r["simspine"]["reproj_median_px_per_camera"]) == set(sess.camera_names)


def test_missing_pose_folder_is_one_line_with_the_detect_command(tmp_path):
    (tmp_path / "calibration").mkdir()
    args = argparse.Namespace(session=str(tmp_path), out=None, pose2sim_gap_filling=False, fps=None)
    with pytest.raises(InputError) as e:
        real.run(args)
    msg = str(e.value)
    assert "\n" not in msg and "no pose/ folder" in msg
    assert f"simspine detect {tmp_path} --backend mediapipe" in msg


def test_default_session_is_a_copy_of_pose2sims_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMSPINE_CACHE", str(tmp_path))
    d = real.default_session()
    assert d == tmp_path / "Demo_SinglePerson"
    assert (d / "Config.toml").is_file() and list((d / "calibration").glob("*.qca.txt"))
    assert len(list((d / "videos").iterdir())) == 4
    assert not real.has_pose(d)
    assert real.default_session() == d  # reused
