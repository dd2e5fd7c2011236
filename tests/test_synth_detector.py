"""Simulated 2D detector: noise statistics, outliers, swaps, occlusion, body-only, confidences."""

import numpy as np
import pytest
from synth_pose import standing_pose

from simspine.skeletons import spinetrack37
from simspine.synth.detector import BODY_DETECTOR_IDS, DetectorConfig, occlusion_mask, simulate_detections
from simspine.synth.rig import h36m_rig, look_at_point, ring_rig

SK = spinetrack37()


def _turning_pose(rig, T=120):
    """The standing pose on the rig's stage, turning once about the vertical (world, Z up)."""
    p = rig.model_to_world(standing_pose() + rig.stage_yup)
    c = rig.stage_zup
    out = []
    for a in np.linspace(0, 2 * np.pi, T, endpoint=False):
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        out.append((p - c) @ R.T + c)
    return np.array(out)


def test_rig_looks_at_stage():
    rig = h36m_rig("S9")
    p = look_at_point(rig.cameras)
    # every optical axis passes within 0.5 m of the common point, which is about 0.4 m above the floor
    for cam in rig.cameras:
        d = cam.R[2]
        v = p - cam.center
        assert np.linalg.norm(v - d * (v @ d)) < 0.5
    assert rig.stage_zup[2] == 0.0 and 0.2 < p[2] < 0.8
    # a point 1 m above the stage projects inside every image
    for cam in rig.cameras:
        uv = cam.project(rig.stage_zup + [0, 0, 1.0])
        assert 0 < uv[0] < cam.size[0] and 0 < uv[1] < cam.size[1]


def test_noise_free_is_exact_projection():
    rig = h36m_rig()
    X = _turning_pose(rig, 20)
    cfg = DetectorConfig(noise_px=0, outlier_rate=0, miss_rate=0, swap_rate=0, occlusion=False)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(0))
    for c, cam in enumerate(rig.cameras):
        np.testing.assert_allclose(det.uv[c], cam.project(X), atol=1e-9)
    assert det.conf.min() > 0.7


def test_noise_statistics_and_reproducible():
    rig = ring_rig()
    X = _turning_pose(rig, 200)
    cfg = DetectorConfig(noise_px=4.0, outlier_rate=0, miss_rate=0, swap_rate=0, occlusion=False)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(1))
    d = (det.uv - det.true_uv)[np.isfinite(det.uv).all(-1)]
    assert abs(d.mean()) < 0.1
    np.testing.assert_allclose(d.std(0), 4.0, rtol=0.03)
    det2 = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(det.uv, det2.uv)


def test_outliers_rate_size_and_confidence():
    rig = ring_rig()
    X = _turning_pose(rig, 200)
    cfg = DetectorConfig(noise_px=2.0, outlier_rate=0.2, miss_rate=0, swap_rate=0, occlusion=False)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(2))
    seen = ~det.missed
    assert abs(det.outlier[seen].mean() - 0.2) < 0.02
    e = det.error_px
    assert np.nanmin(e[det.outlier]) > 10.0 and np.nanmax(e[seen & ~det.outlier]) < 12.0  # 20 px jump, 2 px noise
    # confidence goes down when errors go up
    assert det.conf[det.outlier].mean() < det.conf[seen & ~det.outlier].mean() - 0.2
    assert np.corrcoef(e[seen], det.conf[seen])[0, 1] < -0.5


def test_swaps_exchange_left_and_right():
    rig = ring_rig()
    X = _turning_pose(rig, 50)
    cfg = DetectorConfig(noise_px=0, outlier_rate=0, miss_rate=0, swap_rate=0.3, occlusion=False)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(3))
    i, j = SK.index("LKnee"), SK.index("RKnee")
    m = det.swapped[:, :, i]
    assert 0.2 < m.mean() < 0.4
    np.testing.assert_allclose(det.uv[:, :, i][m], det.true_uv[:, :, j][m], atol=1e-9)
    np.testing.assert_allclose(det.uv[:, :, j][m], det.true_uv[:, :, i][m], atol=1e-9)
    np.testing.assert_array_equal(det.swapped[:, :, i], det.swapped[:, :, j])
    mid = SK.index("Spine_02")  # midline points never swap
    assert not det.swapped[:, :, mid].any()


def test_body_only_drops_spine_points():
    rig = h36m_rig()
    X = _turning_pose(rig, 30)
    det = simulate_detections(X, rig.cameras, DetectorConfig(body_only=True), np.random.default_rng(4))
    spine = np.setdiff1d(np.arange(37), BODY_DETECTOR_IDS)
    assert [SK.names[k] for k in spine] == ["Spine_01", "Spine_02", "Spine_03", "Spine_04", "Spine_05",
                                             "LLatissimus", "RLatissimus", "LClavicle", "RClavicle",
                                             "Neck_02", "Neck_03"]
    assert np.isnan(det.uv[:, :, spine]).all() and (det.conf[:, :, spine] == 0).all()
    assert np.isfinite(det.uv[:, :, list(BODY_DETECTOR_IDS)]).mean() > 0.7


def test_occlusion_back_and_front():
    """Spine points are hidden from a camera in front of the subject and seen from behind;
    the nose the other way round; a point behind the torso is hidden by it."""
    pose = standing_pose()  # model frame: faces +x, y up
    centres = np.array([[4.0, 1.2, 0.0], [-4.0, 1.2, 0.0], [0.0, 1.2, 4.0]])  # front, back, right side
    hid = occlusion_mask(pose[None], centres)[:, 0]
    for name in ("Spine_01", "Spine_02", "Spine_03", "Spine_04", "Hip"):
        k = SK.index(name)
        assert hid[0, k] and not hid[1, k], name
    k = SK.index("Nose")
    assert not hid[0, k] and hid[1, k]
    # the left shoulder seen from the far right side, through the torso
    assert hid[2, SK.index("LShoulder")] and not hid[2, SK.index("RShoulder")]
    # the top of the head is never hidden
    assert not hid[:, SK.index("Head")].any()


@pytest.mark.parametrize("rate", [0.0, 0.1])
def test_missed_detections(rate):
    rig = ring_rig()
    X = _turning_pose(rig, 100)
    cfg = DetectorConfig(noise_px=1.0, outlier_rate=0, miss_rate=rate, swap_rate=0, occlusion=False)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(5))
    assert abs(det.missed.mean() - rate) < 0.01
    assert (np.isnan(det.uv[det.missed]).all() and (det.conf[det.missed] == 0).all())


def test_swap_runs_mirror_whole_views():
    """swap_runs: per camera, runs of swap_run_frames frames where every left/right pair is swapped,
    covering that share of the frames; without it the random stream (and the output) is unchanged."""
    rig = ring_rig()
    X = _turning_pose(rig, 100)
    cfg = DetectorConfig(noise_px=0, outlier_rate=0, miss_rate=0, swap_rate=0, occlusion=False,
                         swap_runs=0.2, swap_run_frames=10)
    det = simulate_detections(X, rig.cameras, cfg, np.random.default_rng(6))
    m = det.view_swapped
    assert m.shape == (len(rig.cameras), 100) and (m.sum(1) == 20).all()
    # runs: 10 frames each (two per camera, apart)
    starts = np.diff(np.c_[np.zeros(len(m)), m.astype(int)], axis=1) == 1
    assert (starts.sum(1) == 2).all()
    swap = np.asarray(SK.swap)
    seen = np.isfinite(det.true_uv[:, :, swap]).all(-1)
    np.testing.assert_allclose(det.uv[m][seen[m]], det.true_uv[:, :, swap][m][seen[m]], atol=1e-9)
    np.testing.assert_allclose(det.uv[~m], det.true_uv[~m], atol=1e-9, equal_nan=True)
    lr = swap != np.arange(len(SK))
    assert (det.swapped[m][:, lr] | det.missed[m][:, lr]).all() and not det.swapped[~m].any()
    base = DetectorConfig(swap_rate=0.01)
    a = simulate_detections(X, rig.cameras, base, np.random.default_rng(7))
    b = simulate_detections(X, rig.cameras, DetectorConfig(swap_rate=0.01, swap_runs=0.0), np.random.default_rng(7))
    np.testing.assert_array_equal(a.uv, b.uv)
    assert not a.view_swapped.any()
