"""Session triangulation and its quality report pinned by value (issue 16): every figure of the
report against a computation written out here on a hand-made result, the printed tables, the
confidences and frames of the markers, the left/right swap record, the files read back with numpy
and json, and every ``require_points`` message. Small inputs: a few seconds in all."""

import json
import warnings

import numpy as np
import pytest

from simspine.calibration import h36m_cameras
from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.io.session import Session2D
from simspine.multiview import reconstruct as rc
from simspine.multiview.calibration_health import calibration_warnings, camera_statistics
from simspine.multiview.lr_swap import swap_index
from simspine.multiview.triangulation import TriangulationOptions, TriangulationResult, triangulate

NAMES = ["LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee",
         "LAnkle", "RAnkle", "Neck"]
BODY = np.array([[0.2, 0, 1.45], [-0.2, 0, 1.45], [0.3, 0, 1.15], [-0.3, 0, 1.15], [0.32, 0, 0.9],
                 [-0.32, 0, 0.9], [0.12, 0, 0.95], [-0.12, 0, 0.95], [0.12, 0, 0.5], [-0.12, 0, 0.5],
                 [0.12, 0, 0.08], [-0.12, 0, 0.08], [0, 0, 1.5]])


def _walk(T):
    return BODY[None] + (0.02 * np.arange(T))[:, None, None] * np.array([0.0, 1.0, 0.0])


def _session(T=10, conf=None, meta=None, cams=None):
    cams = cams or h36m_cameras("S9")
    X = _walk(T)
    uv = np.stack([c.project(X.reshape(-1, 3)).reshape(T, len(NAMES), 2) for c in cams])
    conf = np.ones(uv.shape[:3]) if conf is None else conf
    return Session2D(cams, uv, conf, np.arange(T) / 25.0, NAMES, "test-13", 25.0, meta=meta or {"source": "here"}), X


# ---- the report on a hand-made result --------------------------------------------------------------
def _hand_result():
    """3 frames, 2 keypoints, 3 cameras; errors, views used and validity chosen by hand."""
    cams = h36m_cameras("S9")[:3]
    pts = np.array([[[0.1, 0.2, 1.0], [np.nan] * 3], [[0.0, 0.0, 1.5], [0.3, -0.2, 0.4]],
                    [[-0.2, 0.1, 0.9], [0.2, 0.2, 1.2]]])
    valid = np.isfinite(pts).all(-1)
    used = np.array([[[1, 1, 0], [0, 0, 0]], [[1, 1, 1], [1, 0, 1]], [[0, 1, 1], [1, 1, 1]]], bool)
    err = np.array([[[1.0, 2.0, 40.0], [np.nan, 3.0, np.nan]], [[0.5, 1.5, 2.5], [4.0, 50.0, 2.0]],
                    [[30.0, 1.0, 3.0], [2.0, 2.0, 6.0]]])
    unc = np.where(valid, np.array([[0.002, np.nan], [0.004, 0.006], [0.003, 0.010]]), np.nan)
    res = TriangulationResult(pts, np.zeros((3, 2)), err, used, valid, unc)
    kp = np.zeros((3, 3, 2, 2))
    kp[1, 0, 1] = np.nan  # camera 1 does not see keypoint 1 in frame 0
    conf = np.full((3, 3, 2), 0.9)
    conf[2, 0, 0] = 0.2  # under the threshold
    sess = Session2D(cams, kp, conf, np.arange(3) / 50.0, ["a", "b"])
    return sess, res


def test_per_view_mm_by_hand():
    sess, res = _hand_result()
    mm = rc._per_view_mm(sess.cameras, res.points, res.view_error)
    for c, cam in enumerate(sess.cameras):
        f = (cam.K[0, 0] + cam.K[1, 1]) / 2
        for t in range(3):
            for k in range(2):
                z = (cam.R @ res.points[t, k] + cam.t)[2]
                want = res.view_error[t, k, c] * z / f * 1000
                np.testing.assert_allclose(mm[t, k, c], want, rtol=1e-12, equal_nan=True)


def test_quality_report_by_hand():
    sess, res = _hand_result()
    o = TriangulationOptions(conf_threshold=0.5, chunk=100, max_error_px=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = rc.quality_report(sess, res, o)
    used = res.views_used
    mm = rc._per_view_mm(sess.cameras, res.points, res.view_error)
    # per keypoint: the mean over frames and used views
    for k, entry in enumerate(rep["keypoints"]):
        px = [res.view_error[t, k, c] for t in range(3) for c in range(3) if used[t, k, c]]
        m = [mm[t, k, c] for t in range(3) for c in range(3) if used[t, k, c]]
        assert entry["name"] == "ab"[k]
        assert entry["valid_share"] == pytest.approx(res.valid[:, k].mean(), abs=0)
        assert entry["reproj_error_px"] == pytest.approx(np.mean(px), rel=1e-12)
        assert entry["reproj_error_mm"] == pytest.approx(np.mean(m), rel=1e-12)
        u = res.uncertainty_m_per_px[:, k]
        assert entry["uncertainty_mm_per_px"] == pytest.approx(1000 * u[np.isfinite(u)].mean(), rel=1e-12)
    assert [k["valid_share"] for k in rep["keypoints"]] == [1.0, 2 / 3]
    # per camera
    confident = np.zeros((3, 2, 3), bool)
    for c in range(3):
        confident[..., c] = np.isfinite(sess.keypoints[c]).all(-1) & (sess.conf[c] >= 0.5)
    health = camera_statistics(res.view_error, used, res.valid, confident, sess.camera_names)
    for c, entry in enumerate(rep["cameras"]):
        u = used[..., c]
        want = {"name": sess.cameras[c].name, "used_share": u.mean(), "excluded_share": 1 - u.mean(),
                "excluded_missing_or_low_confidence": (~confident[..., c]).mean(),
                "excluded_inconsistent": (confident[..., c] & ~u).mean(),
                "frames_excluded_share": (~u).all(-1).mean(), **{k: v for k, v in health[c].items() if k != "name"}}
        assert entry == pytest.approx(want)
        assert list(entry)[:6] == ["name", "used_share", "excluded_share", "excluded_missing_or_low_confidence",
                                   "excluded_inconsistent", "frames_excluded_share"]
    assert [c["excluded_missing_or_low_confidence"] for c in rep["cameras"]] == [0.0, 1 / 6, 1 / 6]
    assert [c["frames_excluded_share"] for c in rep["cameras"]] == [0.0, 0.0, 1 / 3]
    assert rep["warnings"] == calibration_warnings(health)
    # the whole
    all_px = res.view_error[used]
    assert rep["frames"] == 3 and rep["keypoints_per_frame"] == 2 and rep["cameras_count"] == 3
    assert rep["valid_share"] == pytest.approx(5 / 6)
    assert rep["mean_reproj_error_px"] == pytest.approx(all_px.mean(), rel=1e-12)
    assert rep["mean_reproj_error_mm"] == pytest.approx(mm[used].mean(), rel=1e-12)
    assert rep["mean_views_used"] == pytest.approx((2 + 3 + 2 + 2 + 3) / 5)
    assert rep["options"]["conf_threshold"] == 0.5 and rep["options"]["chunk"] == 100.0
    assert isinstance(rep["options"]["chunk"], float) and rep["options"]["consistency"] is True
    assert rep["options"]["max_error_px"] is None and rep["options"]["workers"] is None
    assert rep["options"]["max_uncertainty_mm_per_px"] == 25.0
    assert rep["units"] == {"reproj_error_px": "pixels", "reproj_error_mm": "millimetres at the point's depth",
                            "uncertainty_mm_per_px": "first-order RMS 3D error per px of image noise (view geometry)",
                            "shares": "fraction of frames x keypoints"}
    assert list(rep) == ["units", "frames", "keypoints_per_frame", "cameras_count", "valid_share",
                         "mean_reproj_error_px", "mean_reproj_error_mm", "mean_views_used", "options", "keypoints",
                         "cameras", "warnings"]
    json.dumps(rep)  # JSON-serialisable as it is


def test_quality_report_without_valid_points_or_uncertainty():
    sess, res = _hand_result()
    none = TriangulationResult(np.full_like(res.points, np.nan), res.reproj_error, res.view_error,
                               np.zeros_like(res.views_used), np.zeros_like(res.valid), None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = rc.quality_report(sess, none, TriangulationOptions())
    assert rep["mean_views_used"] is None and rep["mean_reproj_error_px"] is None
    assert rep["mean_reproj_error_mm"] is None and rep["valid_share"] == 0.0
    assert all(k["reproj_error_px"] is None and k["uncertainty_mm_per_px"] is None for k in rep["keypoints"])
    assert all(c["excluded_share"] == 1.0 and c["frames_excluded_share"] == 1.0 for c in rep["cameras"])
    assert rc._f(np.inf) is None and rc._f(np.nan) is None and rc._f(np.float32(2.5)) == 2.5
    assert isinstance(rc._f(np.float32(2.5)), float)


def test_quality_report_names_a_video_of_another_size(tmp_path):
    import cv2

    sess, res = _hand_result()
    cam = sess.cameras[0]
    w, h = cam.size
    (tmp_path / "videos").mkdir()
    vw = cv2.VideoWriter(str(tmp_path / "videos" / f"{cam.name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25,
                         (w + 20, h + 20))
    for _ in range(2):
        vw.write(np.zeros((h + 20, w + 20, 3), np.uint8))
    vw.release()
    sess.meta = {"source": str(tmp_path)}
    rep = rc.quality_report(sess, res, TriangulationOptions())
    assert len(rep["warnings"]) == 1 and cam.name in rep["warnings"][0]


# ---- the printed report ----------------------------------------------------------------------------
def test_format_report_text():
    sess, res = _hand_result()
    rep = rc.quality_report(sess, res, TriangulationOptions(conf_threshold=0.5))
    rep["keypoints"][1]["reproj_error_mm"] = None
    rep["lr_swap"] = {"enabled": True, "cameras": {"c0": {"frames_unswapped": 0, "runs": []},
                                                   "c1": {"frames_unswapped": 4, "runs": [[2, 4], [7, 7]]},
                                                   "c2": {"frames_unswapped": 1, "runs": [[0, 0]]}}}
    rep["warnings"] = ["camera X is off", "second"]
    lines = rc.format_report(rep).splitlines()
    assert lines[0] == (f"3 frames x 2 keypoints, 3 cameras: 83.3% valid, mean reprojection error "
                        f"{rep['mean_reproj_error_px']:.2f} px = {rep['mean_reproj_error_mm']:.1f} mm")
    assert lines[1] == ""
    assert lines[2].split() == ["keypoint", "valid", "%", "reproj", "px", "reproj", "mm", "mm", "per", "px", "noise"]
    k0, k1 = rep["keypoints"]
    assert lines[4].split() == ["a", "100.00", f"{k0['reproj_error_px']:.2f}", f"{k0['reproj_error_mm']:.2f}",
                                f"{k0['uncertainty_mm_per_px']:.2f}"]
    assert lines[5].split() == ["b", "66.67", f"{k1['reproj_error_px']:.2f}", "nan", f"{k1['uncertainty_mm_per_px']:.2f}"]
    assert lines[6] == ""
    assert " ".join(lines[7].split()) == "camera used % excluded % missing/low conf % inconsistent % whole frame excluded %"
    c2 = rep["cameras"][2]
    assert lines[11].split() == [sess.cameras[2].name, f"{100 * c2['used_share']:.1f}", f"{100 * c2['excluded_share']:.1f}",
                                 "16.7", f"{100 * c2['excluded_inconsistent']:.1f}", "33.3"]
    assert lines[12] == ""
    assert " ".join(lines[13].split()) == ("camera confident obs. median px p95 px used median px inconsistent % "
                                           "points used %")
    for c in range(3):
        h = rep["cameras"][c]
        assert lines[15 + c].split() == [sess.cameras[c].name, str(h["observations"]), f"{h['median_px']:.1f}",
                                         f"{h['p95_px']:.1f}", f"{h['used_median_px']:.1f}",
                                         f"{100 * h['inconsistent_share']:.1f}", f"{100 * h['points_used_share']:.1f}"]
    assert lines[17].split()[5] != lines[15].split()[5]  # camera 2 excludes a view, camera 0 none
    assert lines[18].startswith("(calibration health: reprojection error of every confident view of a triangulated "
                                "point, used or not; inconsistent: share of those views excluded)")
    assert lines[19:] == ["", "left/right swaps undone (frames): c1 4 (2-4, 7-7); c2 1 (0-0)",
                          "warning: camera X is off", "warning: second"]
    # swaps enabled but none undone; disabled: no line; no health columns: no third table
    rep["lr_swap"] = {"enabled": True, "cameras": {"c0": {"frames_unswapped": 0, "runs": []}}}
    assert "left/right swaps undone (frames): none" in rc.format_report(rep).splitlines()
    rep["lr_swap"]["enabled"] = False
    rep["warnings"] = []
    for c in rep["cameras"]:
        del c["median_px"]
    text = rc.format_report(rep)
    assert "left/right" not in text and "calibration health" not in text and "warning" not in text
    assert len(text.splitlines()) == 12
    del rep["warnings"], rep["lr_swap"]  # a report written before these entries existed
    assert rc.format_report(rep) == text


# ---- the whole session -----------------------------------------------------------------------------
def test_triangulate_session_markers_and_confidences():
    conf = np.array([0.9, 0.8, 0.7, 0.6])[:, None, None] * np.ones((4, 6, len(NAMES)))
    conf[3, :, 0] = 0.2  # under the threshold: not used, not counted in the mean
    sess, X = _session(T=6, conf=conf)
    sess.keypoints[:, 2, 5] = np.nan  # keypoint 5 of frame 2 seen by nobody
    rec = rc.triangulate_session(sess)
    ref = triangulate(sess.cameras, sess.keypoints, sess.conf, TriangulationOptions())
    np.testing.assert_allclose(rec.markers_world.xyz, ref.points, atol=1e-12, equal_nan=True)
    yup = np.stack([ref.points[..., 1], ref.points[..., 2], ref.points[..., 0]], -1)  # (x, y, z) -> (y, z, x)
    np.testing.assert_allclose(rec.markers.xyz, yup, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(rec.markers_world.xyz[np.isfinite(rec.markers_world.xyz)],
                               X[np.isfinite(rec.markers_world.xyz)], atol=1e-6)
    assert rec.markers.conf[0, 1] == pytest.approx(0.75) and rec.markers.conf[0, 0] == pytest.approx(0.8)
    assert rec.markers.conf[2, 5] == 0.0 and not rec.result.valid[2, 5]
    np.testing.assert_array_equal(rec.markers.conf, rec.markers_world.conf)
    assert rec.markers.conf is not rec.markers_world.conf
    assert rec.markers.frame == rc.YUP_FRAME and rec.markers_world.frame == rc.WORLD_FRAME
    for tr in (rec.markers, rec.markers_world):
        assert tr.meta == {"source": "here", "skeleton": "test-13", "cameras": sess.camera_names}
        np.testing.assert_array_equal(tr.time, np.arange(6) / 25.0)
        assert tr.names == NAMES
    assert rec.markers.meta is not rec.markers_world.meta
    assert rec.report["options"]["conf_threshold"] == 0.3
    assert rec.report["lr_swap"] == {"enabled": True, "pairs": 6, "frames_unswapped_total": 0, "cameras": {
        n: {"frames_unswapped": 0, "runs": [], "groups": {"arms": 0, "legs": 0}} for n in sess.camera_names}}
    # the options reach the triangulation and the report
    o = TriangulationOptions(conf_threshold=0.75, swap_fix=False)
    rec = rc.triangulate_session(sess, o)
    assert rec.report["options"]["conf_threshold"] == 0.75
    assert not rec.result.views_used[..., 2:].any() and rec.markers.conf[0, 1] == pytest.approx(0.85)
    assert rec.report["lr_swap"]["enabled"] is False
    assert rec.report["lr_swap"]["cameras"][sess.camera_names[0]]["groups"] == {}
    # confidences above 1 (out of the detector's specification): the markers' are capped at 1
    over = Session2D(sess.cameras, sess.keypoints, sess.conf * 1.5, sess.timestamps, NAMES)
    rec = rc.triangulate_session(over, TriangulationOptions(swap_fix=False))
    assert rec.markers.conf.max() == 1.0 and rec.markers.conf[0, 1] == 1.0


def test_triangulate_session_records_undone_swaps():
    """Camera 1 reports left for right in frames 2-4 and 7-9 (arms and legs): undone, recorded per
    camera and group; the report's exclusion shares describe the corrected labels."""
    sess, X = _session(T=12)
    swap = swap_index(NAMES)
    bad = sess.keypoints.copy()
    frames = [2, 3, 4, 7, 8, 9]
    bad[1, frames] = bad[1, frames][:, swap]
    conf = sess.conf.copy()
    conf[1, frames, 0] = 0.1  # LShoulder's low confidence moves to RShoulder's place in the swapped frames
    bad_sess = Session2D(sess.cameras, bad, conf, sess.timestamps, NAMES, meta={"source": "s"})
    rec = rc.triangulate_session(bad_sess)
    sw = rec.report["lr_swap"]
    name = sess.camera_names[1]
    assert sw["enabled"] is True and sw["pairs"] == 6 and sw["frames_unswapped_total"] == 6
    assert sw["cameras"][name] == {"frames_unswapped": 6, "runs": [[2, 4], [7, 9]],
                                   "groups": {"arms": 6, "legs": 6}}
    assert all(sw["cameras"][n]["frames_unswapped"] == 0 for n in sess.camera_names if n != name)
    np.testing.assert_allclose(rec.markers_world.xyz, X, atol=1e-6)
    # after undoing, the low confidence is RShoulder's (keypoint 1) in those frames, LShoulder's elsewhere
    cam1 = rec.report["cameras"][1]
    assert cam1["excluded_missing_or_low_confidence"] == pytest.approx(6 / (12 * len(NAMES)))
    assert rec.result.views_used[2, 0, 1] and not rec.result.views_used[2, 1, 1]
    # without the fix the swapped frames lose camera 1 instead
    plain = rc.triangulate_session(bad_sess, TriangulationOptions(swap_fix=False))
    assert plain.report["lr_swap"]["frames_unswapped_total"] == 0
    assert plain.report["cameras"][1]["excluded_inconsistent"] > 0.2


def test_swap_report_by_hand():
    sess, _ = _session(T=3)
    sess = Session2D(sess.cameras[:2], sess.keypoints[:2, :1].repeat(10, 1), sess.conf[:2, :1].repeat(10, 1),
                     np.arange(10) / 25.0, NAMES)
    swapped = np.zeros((2, 10), bool)
    swapped[0, [0, 1, 2, 5, 9]] = True
    swap = np.array([1, 0, 3, 2, 4])
    out = rc._swap_report(sess, swapped, swap, True)
    n0, n1 = sess.camera_names
    assert out == {"enabled": True, "pairs": 2, "frames_unswapped_total": 5,
                   "cameras": {n0: {"frames_unswapped": 5, "runs": [[0, 2], [5, 5], [9, 9]]},
                               n1: {"frames_unswapped": 0, "runs": []}}}
    assert rc._swap_report(sess, swapped, swap, 0)["enabled"] is False


# ---- files -------------------------------------------------------------------------------------------
def test_write_triangulation_read_back_with_numpy_and_json(tmp_path):
    sess, X = _session(T=5)
    sess.keypoints[:, 1, 3] = np.nan
    rec = rc.triangulate_session(sess)
    paths = rc.write_triangulation(rec, tmp_path / "out" / "deep", stem="tri")
    assert paths == {"trc": tmp_path / "out" / "deep" / "tri.trc", "npz": tmp_path / "out" / "deep" / "tri.npz",
                     "report": tmp_path / "out" / "deep" / "tri_report.json"}
    with np.load(paths["npz"], allow_pickle=False) as d:
        r = rec.result
        for key, want in (("reproj_error", r.reproj_error), ("valid", r.valid), ("views_used", r.views_used),
                          ("uncertainty_m_per_px", r.uncertainty_m_per_px), ("view_error", r.view_error),
                          ("xyz", rec.markers.xyz), ("conf", rec.markers.conf), ("time", rec.markers.time)):
            np.testing.assert_array_equal(d[key], want)
        info = json.loads(str(d["meta_json"]))
    assert info["units"] == {"xyz": "m", "time": "s", "reproj_error": "px", "view_error": "px",
                             "uncertainty_m_per_px": "m per px"}
    assert info["shapes"] == ("xyz (T, K, 3); conf, reproj_error, valid, uncertainty_m_per_px (T, K); "
                              "views_used, view_error (T, K, C)")
    assert info["cameras"] == sess.camera_names and info["frame"] == rc.YUP_FRAME
    assert json.loads(paths["report"].read_text()) == json.loads(json.dumps(rec.report))
    assert paths["report"].read_text().endswith("}\n") and '\n "units"' in paths["report"].read_text()
    lines = paths["trc"].read_text().splitlines()
    assert lines[4].split("\t")[:2] == ["", ""] and "Y up" in lines[0]
    back = rc.read_triangulation(paths["npz"])
    np.testing.assert_array_equal(back.xyz, rec.markers.xyz)
    np.testing.assert_array_equal(back.conf, rec.markers.conf)
    assert back.frame == rc.YUP_FRAME and back.names == NAMES
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="simspine triangulation file"):
        rc.read_triangulation(tmp_path / "bad.npz")


# ---- no valid point: what to check -----------------------------------------------------------------
def _invalid(rec):
    rec.result.valid[:] = False
    return rec


def test_require_points_messages():
    sess, _ = _session(T=3, meta={"source": "S1"})
    rec = rc.triangulate_session(sess)
    assert rc.require_points(sess, rec) is None
    _invalid(rec)
    with pytest.raises(InputError) as e:
        rc.require_points(sess, rec)
    assert str(e.value) == ("S1: triangulation found no valid 3D point in any frame; likely cause: 100% of "
                            "keypoint-frames are seen by two or more confident cameras but no view pair agreed within "
                            "the thresholds (--reproj-threshold 15 px): check that the calibration belongs to these "
                            "videos (units, camera names, image size) or raise the thresholds")
    with pytest.raises(InputError) as e:
        rc.require_points(sess, rec, TriangulationOptions(reproj_threshold_px=7.5))
    assert "(--reproj-threshold 7.5 px)" in str(e.value)
    # seen by two confident cameras in a quarter of the keypoint-frames
    conf = np.full(sess.conf.shape, 0.1)
    conf[:2, 0, :] = 0.9
    conf[:2, 1, :6] = 0.9
    conf[:, 2, 7] = 0.3  # exactly the threshold: confident
    part = Session2D(sess.cameras, sess.keypoints, conf, sess.timestamps, NAMES, meta={})
    with pytest.raises(InputError) as e:
        rc.require_points(part, rec)
    assert str(e.value).startswith("session: triangulation found no valid 3D point in any frame; likely cause: "
                                   f"{100 * 20 / 39:.0f}% of keypoint-frames")
    # nobody seen by two confident cameras: the threshold and the highest confidence are named
    conf = np.full(sess.conf.shape, 0.1)
    conf[0] = 0.25
    conf[1, 0, 0] = 0.42
    low = Session2D(sess.cameras, sess.keypoints, conf, sess.timestamps, NAMES, "HALPE_26", meta={"source": "S2"})
    low.keypoints[2, 0, 0] = np.nan
    low.conf[2, 0, 0] = 0.99  # not observed: its confidence does not count
    with pytest.raises(InputError) as e:
        rc.require_points(low, rec, TriangulationOptions(conf_threshold=0.4))
    assert str(e.value) == ("S2: triangulation found no valid 3D point in any frame; likely cause: no keypoint is seen "
                            "by two cameras with confidence >= 0.4 (highest confidence 0.42): lower --conf-threshold, "
                            "or check the keypoint layout (HALPE_26) and that the cameras' frames line up")
    low.skeleton = ""
    with pytest.raises(InputError) as e:
        rc.require_points(low, rec, TriangulationOptions(conf_threshold=0.5))
    assert "(highest confidence 0.42)" in str(e.value) and "keypoint layout (unknown)" in str(e.value)
    # no 2D keypoint at all
    empty = Session2D(sess.cameras, np.full(sess.keypoints.shape, np.nan), sess.conf, sess.timestamps, NAMES)
    with pytest.raises(InputError) as e:
        rc.require_points(empty, rec)
    assert str(e.value) == ("session: triangulation found no valid 3D point in any frame; likely cause: no camera has "
                            "any 2D keypoint: check the pose folders and the keypoint layout")


def test_require_points_names_a_calibration_in_millimetres():
    cams = h36m_cameras("S9")
    mm = [Camera(c.name, c.size, c.K, c.dist, c.R, c.t * 1000, c.dist_model) for c in cams]
    sess, _ = _session(T=2, cams=cams)
    dist = [np.linalg.norm(c.t) for c in mm]
    rec = _invalid(rc.triangulate_session(sess))
    for calib, where in (("/x/Calib.toml", " in /x/Calib.toml"), (None, "")):
        s = Session2D(mm, sess.keypoints, sess.conf, sess.timestamps, NAMES,
                      meta={"source": "S3", **({"calibration": calib} if calib else {})})
        with pytest.raises(InputError) as e:
            rc.require_points(s, rec)
        assert str(e.value) == (f"S3: triangulation found no valid 3D point in any frame; likely cause: the camera "
                                f"translations{where} are {min(dist):.4g} to {max(dist):.4g} 'metres' from the world "
                                "origin: the calibration looks like millimetres (Pose2Sim's TOML expects t in metres; "
                                "divide t by 1000)")
    # just under the bound: not called millimetres
    t50 = [Camera(c.name, c.size, c.K, c.dist, c.R, c.t / np.linalg.norm(c.t) * 49.99, c.dist_model) for c in cams]
    s = Session2D(t50, sess.keypoints, sess.conf, sess.timestamps, NAMES)
    with pytest.raises(InputError) as e:
        rc.require_points(s, rec)
    assert "millimetres" not in str(e.value)
    assert rc.MM_CALIBRATION_M == 50.0
