"""Calibration-health details that mutation testing showed the other tests did not pin (issue 16):
the statistics on a hand-made array, each threshold of the warning rule at its boundary, the full
texts of the messages."""

import numpy as np
import pytest

from simspine.cameras import Camera
from simspine.multiview.calibration_health import (
    REFINE_HINT,
    HealthOptions,
    calibration_warnings,
    camera_statistics,
    compare_size,
    find_videos,
    video_size_findings,
)


def test_camera_statistics_by_hand():
    err = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]])
    used = np.array([[True, True], [True, False], [False, True], [True, True], [True, True]])
    valid = np.array([True, True, True, True, False])
    confident = np.array([[True, True], [True, True], [True, True], [False, True], [True, True]])
    a, b = camera_statistics(err[None], used[None], valid[None], confident[None], ["a", "b"])
    # camera a: confident views of valid points 1, 3, 5 (7 is not confident, 9 not valid)
    assert a["name"] == "a" and a["observations"] == 3
    assert a["median_px"] == 3.0 and a["p95_px"] == pytest.approx(np.percentile([1, 3, 5], 95))
    # used by valid points: 1, 3, 7
    assert a["used_median_px"] == 3.0 and a["used_p95_px"] == pytest.approx(np.percentile([1, 3, 7], 95))
    assert a["inconsistent_share"] == pytest.approx(1 / 3)  # 5 was confident but not used
    assert a["points_used_share"] == 3 / 4
    # camera b: NaN error at row 1 is no observation; confident valid: 2, 6, 8
    assert b["observations"] == 3 and b["median_px"] == 6.0
    assert b["used_median_px"] == 6.0 and b["inconsistent_share"] == 0.0 and b["points_used_share"] == 3 / 4
    # no data: None everywhere
    (z,) = camera_statistics(np.full((3, 1), np.nan), np.zeros((3, 1), bool), np.zeros(3, bool),
                             np.ones((3, 1), bool), ["z"])
    assert z == {"name": "z", "observations": 0, "median_px": None, "p95_px": None, "used_median_px": None,
                 "used_p95_px": None, "inconsistent_share": None, "points_used_share": None}


def _s(name, med, inc, n=100, p95=None):
    return {"name": name, "observations": n, "median_px": med, "p95_px": p95 if p95 is not None else 2 * med,
            "inconsistent_share": inc}


def test_warning_rule_boundaries_and_text():
    base = [_s("a", 3.0, 0.02), _s("b", 3.0, 0.02), _s("c", 3.0, 0.04)]
    # error: above 2 x the others' median (3 px) and above the 5 px floor
    w = calibration_warnings(base + [_s("d", 6.5, 0.02, p95=9.0)])
    assert w == ["camera d disagrees with the other cameras: median reprojection error 6.5 px (p95 9.0 px) "
                 "vs 3.0 px for the others; excluded as inconsistent from 2% of its confident observations "
                 f"vs 2%. Check its calibration (moved or bumped after calibrating? the right file?); {REFINE_HINT}"]
    assert calibration_warnings(base + [_s("d", 6.0, 0.02)]) == []  # exactly 2x: not above
    low = [_s("a", 1.0, 0.02), _s("b", 1.0, 0.02), _s("c", 1.0, 0.02)]
    assert calibration_warnings(low + [_s("d", 5.0, 0.02)]) == []  # 5x but not above the 5 px floor
    assert len(calibration_warnings(low + [_s("d", 5.01, 0.02)])) == 1
    # inconsistency alone: above 3 x the others' median share and at least 0.10 above it
    assert calibration_warnings(base + [_s("d", 3.0, 0.13)])[0].startswith("camera d ")
    assert calibration_warnings(base + [_s("d", 3.0, 0.06)]) == []  # 3x exactly: not above
    assert calibration_warnings(base + [_s("d", 3.0, 0.11)]) == []  # 5.5x but only 0.09 above
    # several inconsistent cameras and none by error: only the most excluded one is named
    two = calibration_warnings([_s("a", 3.0, 0.0), _s("b", 3.0, 0.0), _s("c", 3.0, 0.3), _s("d", 3.0, 0.5)])
    assert len(two) == 1 and two[0].startswith("camera d ")
    three = calibration_warnings([_s("a", 3.0, 0.0), _s("b", 3.0, 0.0), _s("c", 3.0, 0.0), _s("d", 3.0, 0.75)])
    assert "from 75% of its confident observations vs 0%" in three[0]
    # an error outlier hides the inconsistency-only ones
    both = calibration_warnings([_s("a", 3.0, 0.0), _s("b", 3.0, 0.0), _s("c", 3.0, 0.5), _s("d", 9.0, 0.0)])
    assert len(both) == 1 and both[0].startswith("camera d ")
    # fewer than min_observations: neither judged nor a reference; fewer than 3 judged: nothing
    assert calibration_warnings(base + [_s("d", 9.0, 0.02, n=29)]) == []
    assert len(calibration_warnings(base + [_s("d", 9.0, 0.02, n=30)])) == 1
    assert calibration_warnings([_s("a", 3.0, 0.0), _s("b", 30.0, 0.0)]) == []
    assert calibration_warnings([_s("a", 3.0, 0.0), _s("b", 3.0, 0.0), _s("c", 3.0, 0.0, n=10),
                                 _s("d", 30.0, 0.0)]) != []
    o = HealthOptions(error_ratio=10.0)
    assert calibration_warnings(base + [_s("d", 9.0, 0.02)], o) == []


def test_compare_size_texts_and_tolerance():
    assert compare_size("c", (1920, 1080), (1920, 1080)) is None
    lvl, msg = compare_size("c", (1920, 1088), (1920, 1080))
    assert lvl == "warning" and msg == (
        "camera c: the video is 1920x1088 px but its calibration says 1920x1080 px (0 x 8 px apart, e.g. an "
        "encoder padding to a multiple of 16): its principal point may be off by up to half that; check that "
        "the calibration was made on frames of this size")
    lvl, msg = compare_size("c", (960, 540), (1920, 1080))
    assert lvl == "warning" and msg == (
        "camera c: the video is 960x540 px but its calibration says 1920x1080 px: the calibration was made at "
        "2x this resolution; keypoints detected on this video are not in the calibration's pixels (scale the "
        "intrinsic matrix, or detect on full-resolution frames)")
    lvl, msg = compare_size("c", (1080, 1920), (1920, 1080))
    assert lvl == "error" and msg == (
        "camera c: the video is 1080x1920 px but its calibration says 1920x1080 px (aspect ratio 0.562 vs "
        "1.778): the calibration does not belong to this video (rotated video, or another camera's "
        "calibration?)")
    # aspect 4 % off: within the 5 % tolerance (a warning); 6 % off: an error
    assert compare_size("c", (1040, 1000), (1000, 1000))[0] == "warning"
    assert compare_size("c", (1060, 1000), (1000, 1000))[0] == "error"
    assert compare_size("c", (1060, 1000), (1000, 1000), HealthOptions(aspect_tolerance=0.1))[0] == "warning"
    # 4 % larger in both directions: no scale message (within tolerance), the padding one
    assert "apart" in compare_size("c", (1040, 1040), (1000, 1000))[1]
    assert "resolution" in compare_size("c", (1060, 1060), (1000, 1000))[1]


def test_find_videos_and_missing_folders(tmp_path):
    cams = [Camera(n, (100, 100), np.eye(3)) for n in ("cam01", "cam02", "cam03")]
    assert video_size_findings(None, cams) == [] and video_size_findings(tmp_path / "no", cams) == []
    assert find_videos(tmp_path, cams) == {}
    v = tmp_path / "videos"
    v.mkdir()
    for f in ("cam01.MP4", "cam02.txt", "cam02.avi", "other.avi", "cam03.txt"):
        (v / f).write_bytes(b"")
    (v / "cam01.mkv").mkdir()  # a folder is not a video
    found = find_videos(tmp_path, cams)
    assert found == {"cam01": v / "cam01.MP4", "cam02": v / "cam02.avi"}
    assert video_size_findings(tmp_path, cams) == []  # unreadable (empty) videos are skipped


def test_video_size_findings_use_the_options(tmp_path):
    import cv2

    (tmp_path / "videos").mkdir()
    vw = cv2.VideoWriter(str(tmp_path / "videos" / "cam01.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (208, 192))
    for _ in range(2):
        vw.write(np.zeros((192, 208, 3), np.uint8))
    vw.release()
    cams = [Camera("cam01", (192, 192), np.eye(3))]
    # aspect 208/192 = 1.083: an error with the default 5 % tolerance, a warning with 10 %
    assert video_size_findings(tmp_path, cams)[0][0] == "error"
    assert video_size_findings(tmp_path, cams, HealthOptions(aspect_tolerance=0.1))[0][0] == "warning"
