"""Camera projection and undistortion against independent formulas and OpenCV."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from simspine.calibration import h36m_cameras, h36m_subjects, matrix_to_rodrigues, read_qca
from simspine.cameras import Camera

H36M = json.loads(resources.files("simspine.data").joinpath("h36m_cameras.json").read_text())
QCA = Path(__import__("Pose2Sim").__file__).parent / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"


def _qmul(a, b):
    """Hamilton product of quaternions (w, x, y, z), broadcast over leading axes."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], -1)


def _h36m_published_projection(X_mm, q_wxyz, c_mm, intr):
    """Human3.6M's projection written out from the dataset's own description, independently of
    simspine: X_cam = R^T (X_world - t) with R the quaternion's rotation (camera axes -> world axes),
    computed as q^-1 (X - t) q, then the distortion model spelled out in the JSON."""
    q = np.asarray(q_wxyz, float) / np.linalg.norm(q_wxyz)
    qc = q * np.array([1, -1, -1, -1])
    v = np.concatenate([np.zeros((len(X_mm), 1)), X_mm - np.asarray(c_mm)], 1)
    Xc = _qmul(_qmul(np.broadcast_to(qc, v.shape), v), np.broadcast_to(q, v.shape))[:, 1:]
    x, y = Xc[:, 0] / Xc[:, 2], Xc[:, 1] / Xc[:, 2]
    k1, k2, k3 = intr["radial_distortion"]
    p1, p2 = intr["tangential_distortion"]
    r2 = x ** 2 + y ** 2
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    tan = p1 * x + p2 * y
    xd = x * (radial + tan) + p1 * r2
    yd = y * (radial + tan) + p2 * r2
    (fx, fy), (cx, cy) = intr["focal_length"], intr["center"]
    return np.stack([fx * xd + cx, fy * yd + cy], 1)


def test_h36m_json_states_the_formula_used():
    # The independent formula above is the one the package data spells out.
    assert H36M["distortion_model"] == (
        "x=X/Z, y=Y/Z; r2=x^2+y^2; radial=1+k1*r2+k2*r2^2+k3*r2^3; tan=p1*x+p2*y; "
        "xd=x*(radial+tan)+p1*r2; yd=y*(radial+tan)+p2*r2; u=fx*xd+cx; v=fy*yd+cy. "
        "The tangential term differs from OpenCV's.")
    assert H36M["world_to_camera"].startswith("X_cam = R^T (X_world - t)")


@pytest.mark.parametrize("subject", ["S1", "S5", "S6", "S7", "S8", "S9", "S11"])
def test_h36m_projection_matches_published_formula(subject):
    rng = np.random.default_rng(1)
    cams = h36m_cameras(subject)
    assert [c.name for c in cams] == [i["id"] for i in H36M["intrinsics"]]
    # points around the capture volume centre (mm), where the subject stands
    X_mm = rng.uniform([-2000, -2000, 0], [2000, 2000, 2000], size=(500, 3))
    for cam, intr, ext in zip(cams, H36M["intrinsics"], H36M["extrinsics"][subject], strict=True):
        expected = _h36m_published_projection(X_mm, ext["orientation_wxyz"], ext["translation_mm"], intr)
        got = cam.project(X_mm / 1000.0)
        assert np.abs(got - expected).max() < 1e-6
        # camera centre is the published translation, in metres
        np.testing.assert_allclose(cam.center, np.asarray(ext["translation_mm"]) / 1000, atol=1e-9)
        # the points used are really in view for most cameras (a meaningful check, not NaNs)
        inside = (got[:, 0] >= 0) & (got[:, 0] < cam.size[0]) & (got[:, 1] >= 0) & (got[:, 1] < cam.size[1])
        assert inside.mean() > 0.3


def test_h36m_subjects():
    assert h36m_subjects() == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]


def _opencv_cameras():
    cams = read_qca(QCA)
    # a strongly distorting camera with every OpenCV coefficient, incl. k3 and tangential terms
    R = cv2.Rodrigues(np.array([0.3, -0.2, 0.1]))[0]
    cams.append(Camera("wide", (1920, 1080), [[1000, 0, 950], [0, 1010, 530], [0, 0, 1]],
                       [-0.28, 0.09, 0.0012, -0.0008, -0.012], R, [0.1, -0.2, 3.0]))
    return cams


def test_opencv_model_matches_cv2_project_points():
    rng = np.random.default_rng(2)
    for cam in _opencv_cameras():
        # points in front of the camera, spread over (and a bit beyond) its field of view
        uv = rng.uniform([0, 0], cam.size, size=(400, 2))
        rays = np.concatenate([cam.pixels_to_normalized(uv), np.ones((400, 1))], 1)
        Xc = rays * rng.uniform(1.0, 8.0, size=(400, 1))
        X = (Xc - cam.t) @ cam.R  # camera -> world
        k1, k2, p1, p2, k3 = cam.dist
        ref, _ = cv2.projectPoints(X.reshape(-1, 1, 3), matrix_to_rodrigues(cam.R), cam.t, cam.K,
                                   np.array([k1, k2, p1, p2, k3]))
        assert np.abs(cam.project(X) - ref.reshape(-1, 2)).max() < 1e-6


def _image_grid(cam, n=25):
    w, h = cam.size
    u, v = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    grid = np.stack([u.ravel(), v.ravel()], 1)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float)
    return np.concatenate([grid, corners])


def _distort_pixels(cam, uv):
    return cam.normalized_to_pixels(cam.distort_normalized(cam.pixels_to_normalized(uv)))


@pytest.mark.parametrize("model", ["h36m", "opencv"])
def test_undistort_inverts_distort_across_the_image(model):
    cams = [c for s in ("S1", "S9") for c in h36m_cameras(s)] if model == "h36m" else _opencv_cameras()
    largest = 0.0
    for cam in cams:
        uv = _image_grid(cam)
        # ideal pixels -> distorted -> undistorted
        assert np.abs(cam.undistort_pixels(_distort_pixels(cam, uv)) - uv).max() < 1e-6
        # observed (distorted) pixels, corners included -> undistorted -> distorted again
        assert np.abs(_distort_pixels(cam, cam.undistort_pixels(uv)) - uv).max() < 1e-6
        largest = max(largest, np.abs(_distort_pixels(cam, uv) - uv).max())
    assert largest > 20  # the check is made where distortion moves pixels a lot, not only near zero
