"""Calibration health: per-camera residual statistics, the warning naming a camera that is off, and
the video frame-size check."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.io.session import Session2D
from simspine.multiview.calibration_health import (
    calibration_warnings,
    camera_statistics,
    check_video_sizes,
    compare_size,
)
from simspine.multiview.reconstruct import format_report, triangulate_session
from simspine.skeletons import spinetrack37
from simspine.synth.session import SynthConfig, make_session


def rotated(cam: Camera, deg: float, axis=(0.3, 1.0, 0.2)) -> Camera:
    """``cam`` turned by ``deg`` about its own centre."""
    a = np.asarray(axis, float)
    R = Rotation.from_rotvec(np.deg2rad(deg) * a / np.linalg.norm(a)).as_matrix() @ cam.R
    return Camera(cam.name, cam.size, cam.K, cam.dist, R, -R @ cam.center, cam.dist_model)


def session_with(synth, cameras) -> Session2D:
    det = synth.detections
    T = det.uv.shape[1]
    return Session2D(cameras, det.uv, det.conf, np.arange(T) / synth.config.fps, list(spinetrack37().names),
                     "SpineTrack-37", synth.config.fps)


@pytest.fixture(scope="module")
def demo_like():
    """A session made with simspine.synth's defaults (4 s walking, Human3.6M rig, 3 px noise, 5%
    outliers, swaps, occlusion)."""
    return make_session(SynthConfig())


# ---- statistics and the rule, on arrays -----------------------------------------------------------
def _arrays(offsets, n=400, seed=0):
    """view errors of C cameras: |N(0, 2 px)| plus a per-camera offset; camera 0 excluded where its
    error exceeds 15 px."""
    rng = np.random.default_rng(seed)
    C = len(offsets)
    err = np.abs(rng.normal(0, 2.0, (n, C))) + np.asarray(offsets, float)
    used = err < 15
    valid = np.ones(n, bool)
    confident = np.ones((n, C), bool)
    return err, used, valid, confident


def test_statistics_and_warning_name_the_odd_camera():
    err, used, valid, confident = _arrays([0, 0, 30, 0])
    stats = camera_statistics(err, used, valid, confident, ["a", "b", "c", "d"])
    c = stats[2]
    assert c["median_px"] == pytest.approx(31.3, abs=0.5)  # all its confident views, used or not
    assert c["inconsistent_share"] == 1.0 and c["points_used_share"] == 0.0 and c["used_median_px"] is None
    assert stats[0]["median_px"] == pytest.approx(1.35, abs=0.3) and stats[0]["inconsistent_share"] == 0.0
    w = calibration_warnings(stats)
    assert len(w) == 1 and w[0].startswith("camera c ") and "31.3 px" in w[0]
    assert "simspine calibrate refine SESSION --out FILE.toml" in w[0]


def test_no_warning_when_cameras_agree_or_only_two():
    assert calibration_warnings(camera_statistics(*_arrays([0, 0.5, 1.0, 0]), ["a", "b", "c", "d"])) == []
    # a camera twice as noisy as the others but under the pixel floor is not named
    assert calibration_warnings(camera_statistics(*_arrays([0, 0, 2.5, 0]), ["a", "b", "c", "d"])) == []
    # two cameras share one disagreement: which one is off cannot be told
    assert calibration_warnings(camera_statistics(*_arrays([0, 30]), ["a", "b"])) == []


# ---- video frame sizes ---------------------------------------------------------------------------
def test_compare_size_levels():
    assert compare_size("cam01", (1088, 1920), (1088, 1920)) is None
    level, msg = compare_size("cam01", (1080, 1920), (1088, 1920))  # Pose2Sim's Demo_SinglePerson
    assert level == "warning" and "cam01" in msg and "1080x1920" in msg and "1088x1920" in msg
    level, msg = compare_size("cam02", (1920, 1080), (1080, 1920))  # rotated video
    assert level == "error" and "cam02" in msg
    level, msg = compare_size("cam03", (960, 540), (1920, 1080))  # same aspect, half resolution
    assert level == "warning" and "2x this resolution" in msg


def _write_video(path, w, h):
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for _ in range(2):
        vw.write(np.zeros((h, w, 3), np.uint8))
    vw.release()


def test_check_video_sizes_reads_the_videos(tmp_path):
    K = np.array([[1000.0, 0, 540], [0, 1000, 960], [0, 0, 1]])
    cams = [Camera(f"cam0{i}", (1088, 1920), K) for i in (1, 2, 3)]
    (tmp_path / "videos").mkdir()
    _write_video(tmp_path / "videos" / "cam01.avi", 1080, 1920)  # 8 px narrower: warning
    _write_video(tmp_path / "videos" / "cam02.avi", 1088, 1920)  # matches
    w = check_video_sizes(tmp_path, cams)
    assert len(w) == 1 and "cam01" in w[0] and "1080x1920" in w[0] and "1088x1920" in w[0]
    _write_video(tmp_path / "videos" / "cam03.avi", 1920, 1088)  # landscape video, portrait calibration
    with pytest.raises(InputError, match="cam03"):
        check_video_sizes(tmp_path, cams)
    assert check_video_sizes(tmp_path / "nothing_here", cams) == []


# ---- synthetic sessions --------------------------------------------------------------------------
def test_correct_calibration_no_warning_rotated_camera_named(demo_like):
    rep = triangulate_session(session_with(demo_like, demo_like.rig.cameras)).report
    assert rep["warnings"] == []
    med = [c["median_px"] for c in rep["cameras"]]
    assert max(med) < 4.0  # 3 px detector noise

    cams = list(demo_like.rig.cameras)
    bad = cams[1].name
    cams[1] = rotated(cams[1], 2.0)
    rep = triangulate_session(session_with(demo_like, cams)).report
    assert len(rep["warnings"]) == 1 and rep["warnings"][0].startswith(f"camera {bad} ")
    c = rep["cameras"][1]
    assert c["median_px"] > 25 and c["inconsistent_share"] > 0.4  # 2 degrees at f = 1145 px: ~40 px
    text = format_report(rep)
    assert f"warning: camera {bad} disagrees" in text and "p95 px" in text
