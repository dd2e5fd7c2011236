"""Checks by value for six plausible bugs that the suite once let through (issue 16).

Each test names the bug it catches. They were checked by planting the bug into a copy of the
package (``PYTHONPATH=copy/src pytest tests/test_six_bugs.py``): each test fails with its bug
planted and passes on the real code. Files are read back with readers independent of the writer
(pandas, the csv module, OpenSim's own tables), numbers are compared with their units.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from simspine.calibration import h36m_cameras
from simspine.cameras import Camera


# ---- 1. a reported MPJPE ten times too large ---------------------------------------------------
def test_bench_triangulation_mpjpe_is_in_millimetres():
    """``simspine bench triangulation``'s MPJPE column: a 3-4-0 mm offset is 5 mm, NaN rows counted."""
    from simspine.bench.triangulation import _mpjpe

    X = np.zeros((4, 2, 3))
    P = X + np.array([0.003, 0.004, 0.0])
    P[0, 0] = np.nan
    err, missing = _mpjpe(P, X)
    assert err == pytest.approx(5.0, abs=1e-9) and missing == 1


def test_metrics_mpjpe_millimetres_by_hand():
    """metrics.mpjpe / per_region (the demo's and the closed loop's MPJPE): known offsets in metres
    give known millimetres."""
    from simspine import metrics

    gt = np.zeros((3, 37, 3))
    pred = gt.copy()
    pred[..., 0] = 0.002  # 2 mm everywhere
    pred[:, 0, :] = [0.0, 0.0, 0.020]  # keypoint 0 off by 20 mm
    assert metrics.mpjpe(pred, gt) == pytest.approx((36 * 2 + 20) / 37, rel=1e-12)
    assert metrics.per_point_error(pred, gt)[0, 0] == pytest.approx(20.0)
    reg = metrics.per_region(pred, gt, {"a": np.array([0]), "b": np.array([1, 2])})
    assert reg["a"] == pytest.approx(20.0) and reg["b"] == pytest.approx(2.0)


# ---- 2. report millimetre values doubled ---------------------------------------------------------
def _square_rig(f=1000.0, dist=4.0):
    """4 cameras (f px, no distortion) on a circle of radius ``dist`` m around the origin, looking in."""
    cams = []
    for i, a in enumerate(np.deg2rad([0, 90, 180, 270])):
        c = np.array([dist * np.cos(a), dist * np.sin(a), 0.0])
        z = -c / np.linalg.norm(c)  # optical axis towards the origin
        x = np.cross([0.0, 0.0, 1.0], z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        cams.append(Camera(f"c{i}", (1000, 1000), [[f, 0, 500], [0, f, 500], [0, 0, 1]], R=R, t=-R @ c))
    return cams


def test_triangulation_report_millimetres_at_depth():
    """The quality report's reprojection error in mm is the pixel error times depth / focal length:
    with f = 1000 px and every point 4 m from each camera (at the rig's centre), 1 px is 4 mm."""
    from simspine.io.session import Session2D
    from simspine.multiview.reconstruct import quality_report
    from simspine.multiview.triangulation import TriangulationOptions, triangulate

    cams = _square_rig()
    X = np.zeros((3, 2, 3))  # 3 frames, 2 keypoints, both at the rig's centre
    uv = np.stack([c.project(X.reshape(-1, 3)).reshape(3, 2, 2) for c in cams])
    uv[0, :, 0, 0] += 3.0  # keypoint 0: camera 0 off by 3 px
    sess = Session2D(cams, uv, np.ones(uv.shape[:3]), np.arange(3) / 50.0, ["a", "b"], fps=50.0)
    opts = TriangulationOptions()
    res = triangulate(cams, uv, np.ones(uv.shape[:3]), options=opts)
    rep = quality_report(sess, res, opts)
    kp = {k["name"]: k for k in rep["keypoints"]}
    px = kp["a"]["reproj_error_px"]
    assert 0.1 < px < 3.0  # the 3 px offset is shared out among the views
    # every used point sits ~4 m in front of every camera (it moves by well under a mm)
    assert kp["a"]["reproj_error_mm"] == pytest.approx(4.0 * px, rel=1e-3)
    assert kp["b"]["reproj_error_px"] < 1e-6 and kp["b"]["reproj_error_mm"] < 1e-5
    assert rep["mean_reproj_error_mm"] == pytest.approx(4.0 * rep["mean_reproj_error_px"], rel=1e-3)
    assert rep["units"]["reproj_error_mm"].startswith("millimetres")


def test_triangulate_command_report_mm_matches_px(tmp_path, capsys):
    """``simspine triangulate``'s JSON report (read back with json): mm = px x depth / f for every
    keypoint, with depths and focal lengths computed here from the calibration."""
    from simspine.calibration import write_calibration_toml
    from simspine.cli import main
    from simspine.io.openpose import write_openpose_folder

    rng = np.random.default_rng(3)
    T, K = 6, 37
    X = np.c_[rng.uniform(-0.3, 0.3, K), rng.uniform(-0.3, 0.3, K), rng.uniform(0.1, 1.8, K)][None].repeat(T, 0)
    cams = [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    write_calibration_toml(tmp_path / "s" / "calibration" / "Calib.toml", cams)
    for c in cams:
        uv = c.project(X) + rng.normal(scale=1.0, size=(T, K, 2))
        write_openpose_folder(tmp_path / "s" / "pose" / f"{c.name}_json", uv, np.ones((T, K)))
    (tmp_path / "s" / "Config.toml").write_text("[project]\nframe_rate = 50\n")
    assert main(["triangulate", str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    rep = json.loads((tmp_path / "out" / "triangulated_report.json").read_text())
    # independent: mean over the views of px error x depth / f (noise 1 px, all views used)
    mm_per_px = np.array([[np.dot(X[0, k] - c.center, c.R[2]) / (0.5 * (c.K[0, 0] + c.K[1, 1])) * 1000.0
                           for c in cams] for k in range(K)])  # (K, C)
    for k, entry in enumerate(rep["keypoints"]):
        lo, hi = mm_per_px[k].min(), mm_per_px[k].max()
        ratio = entry["reproj_error_mm"] / entry["reproj_error_px"]
        assert lo * 0.98 <= ratio <= hi * 1.02, (entry["name"], ratio, lo, hi)


# ---- 3. the segment columns of rotations.csv reversed ------------------------------------------
def test_rotations_csv_columns_hold_their_segment(tmp_path):
    """Each ``<body>_<angle>_deg`` column of rotations.csv (read with pandas) holds that body's angle,
    and the npz agrees."""
    from simspine.biomech.fitting import write_rotations
    from simspine.biomech.fk import EULER_LABELS, SPINE_SEGMENTS, SpineRotations

    T, S = 4, len(SPINE_SEGMENTS)
    seg = np.array([[[100.0 * s + 10.0 * j + t for j in range(3)] for s in range(S)] for t in range(T)])
    inter_names = ["L5_S1_Flex_Ext", "L5_S1_Lat_Bending"]
    inter = np.array([[1000.0 + t, 2000.0 + t] for t in range(T)])
    rots = SpineRotations(np.arange(T) / 50.0, inter_names, inter, [b for b, _ in SPINE_SEGMENTS], seg)
    csv, npz = write_rotations(rots, tmp_path)
    df = pd.read_csv(csv, comment="#")
    assert list(df.columns[:3]) == ["time", "L5_S1_Flex_Ext_deg", "L5_S1_Lat_Bending_deg"]
    np.testing.assert_allclose(df["L5_S1_Lat_Bending_deg"], 2000.0 + np.arange(T))
    for s, (body, _) in enumerate(SPINE_SEGMENTS):
        for j, lab in enumerate(EULER_LABELS):
            np.testing.assert_allclose(df[f"{body}_{lab}_deg"], 100.0 * s + 10.0 * j + np.arange(T),
                                       err_msg=f"{body}_{lab}_deg")
    z = np.load(npz)
    assert list(z["segment_bodies"]) == [b for b, _ in SPINE_SEGMENTS]
    np.testing.assert_allclose(z["segment_euler_deg"][:, 6, 0], 600.0 + np.arange(T))


# ---- 4. marker RMS written in mm under a metre header -------------------------------------------
def test_ik_errors_csv_is_in_metres(tmp_path):
    """ik_errors.csv's ``rms_m``/``max_m`` (and per-marker ``<marker>_m``) columns, read with
    pandas, hold metres."""
    from simspine.biomech.fitting import _write_errors

    res = SimpleNamespace(time=np.array([0.0, 0.02]), rms=np.array([0.0123, 0.0045]),
                          max=np.array([0.031, 0.009]), n_markers=np.array([20, 19]),
                          marker_names=["A", "B"], marker_errors=np.array([[0.031, 0.002], [0.009, np.nan]]),
                          robust_weights=None, backend="jacobian", meta={})
    path = _write_errors(res, tmp_path / "ik_errors.csv")
    df = pd.read_csv(path, comment="#")
    assert {"rms_m", "max_m", "n_markers"} <= set(df.columns)
    np.testing.assert_allclose(df["rms_m"], [0.0123, 0.0045])
    np.testing.assert_allclose(df["max_m"], [0.031, 0.009])
    assert list(df["n_markers"]) == [20, 19]
    if "A_m" in df.columns:
        np.testing.assert_allclose(df["A_m"], [0.031, 0.009])
    assert "metres" in path.read_text().splitlines()[0]


# ---- 5. the heel-to-sole term of the stature 1.5x too long ---------------------------------------
def test_model_stature_matches_the_meshes():
    """model_stature of the generic model: Head keypoint above the lowest vertex of either foot
    mesh, both placed in ground here from the bodies' transforms (1.716 m)."""
    from simspine.biomech.fk import Kinematics
    from simspine.biomech.model import mesh_points_in_body, prepare_model
    from simspine.biomech.scaling import model_stature

    kin = Kinematics(prepare_model())
    kin.set_defaults()
    lowest = []
    for mesh, body in (("foot.vtp", "calcn_r"), ("l_foot.vtp", "calcn_l")):
        _, pts = mesh_points_in_body(mesh, body)
        lowest.append((pts @ kin.body_rotation(body).T + kin.body_origin(body))[:, 1].min())
    head = kin.marker_positions(["Head"])[0, 1]
    expected = head - min(lowest)
    assert expected == pytest.approx(1.716, abs=0.002)
    assert model_stature(kin) == pytest.approx(expected, abs=1e-4)
    # the foot factor scales only the heel-marker-to-sole part (3.3 cm on the generic model)
    heel = kin.marker_positions(["RHeel"])[0, 1]
    h2s = heel - min(lowest)
    assert h2s == pytest.approx(0.0331, abs=0.001)
    assert model_stature(kin, foot_factor=2.0) == pytest.approx(expected + h2s, abs=1e-4)


# ---- 6. the reprojection threshold changed from 15 to 60 px --------------------------------------
def test_view_off_by_30px_is_dropped_by_default():
    """A view 30 px off (more than 15 px, less than 60) is dropped by the default options and the
    point comes back exact from the other three; with the threshold at 60 it would be kept."""
    from simspine.multiview.triangulation import TriangulationOptions, triangulate

    assert TriangulationOptions().reproj_threshold_px == 15.0
    cams = _square_rig()
    X = np.array([[[0.1, -0.05, 0.2]]])
    uv = np.stack([c.project(X.reshape(-1, 3)).reshape(1, 1, 2) for c in cams])
    uv[2, 0, 0] += [30.0, 0.0]
    res = triangulate(cams, uv, np.ones(uv.shape[:3]))
    assert list(res.views_used[0, 0]) == [True, True, False, True]
    assert np.abs(res.points[0, 0] - X[0, 0]).max() < 1e-6
    loose = triangulate(cams, uv, np.ones(uv.shape[:3]), options=TriangulationOptions(reproj_threshold_px=60.0))
    assert loose.views_used[0, 0].all() and np.abs(loose.points[0, 0] - X[0, 0]).max() > 1e-3
