"""cameras.py: behaviours the first tests left open, found by mutation testing (issue 16).

Pinned by value: the coefficient order of each distortion model, the distortion Jacobian (against
finite differences, both models, skewed intrinsics), points behind the camera, skew in the pixel
mapping, the Newton undistortion's stopping rule, the distortion-model conversion (exact and
fitted, with its stored error), quaternion normalisation, and every validation message.
"""

import re

import cv2
import numpy as np
import pytest

from simspine.cameras import Camera, projection_matrices, rotation_from_quaternion
from simspine.errors import InputError

K = [[1000.0, 2.5, 950.0], [0.0, 1010.0, 530.0], [0.0, 0.0, 1.0]]  # with a little skew
R0 = cv2.Rodrigues(np.array([0.3, -0.2, 0.1]))[0]
T0 = np.array([0.1, -0.2, 3.0])


def _cam(dist=(-0.28, 0.09, 0.0012, -0.0008, -0.012), model="opencv", **kw):
    return Camera("c", (1920, 1080), K, list(dist), R0, T0, model, **kw)


# ---- construction and validation ---------------------------------------------------------------
def test_constructor_normalises_fields():
    cam = Camera("c", (1920.0, 1080.7), np.array(K).ravel(), [0.1, 0.2], R0.ravel(), T0.tolist())
    assert cam.size == (1920, 1080) and all(type(s) is int for s in cam.size)
    assert cam.K.shape == (3, 3) and cam.R.shape == (3, 3) and cam.t.shape == (3,)
    assert cam.dist.tolist() == [0.1, 0.2, 0.0, 0.0, 0.0]  # short lists padded with zeros
    # 8 coefficients (OpenCV's rational model) are accepted when the extra three are zero
    assert Camera("c", (1, 1), K, [0.1, 0.2, 0.3, 0.4, 0.5, 0, 0, 0]).dist.tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]
    with pytest.raises(InputError) as e:
        Camera("cam7", (1, 1), K, [0.1, 0.2, 0.3, 0.4, 0.5, 0, 0.01, 0])
    assert str(e.value) == "cam7: only 5 distortion coefficients are supported, got 8"
    # 6 or 8 coefficients with a non-zero sixth are refused
    for extra in ([0.01], [0.01, 0, 0]):
        with pytest.raises(InputError, match=f"only 5 distortion coefficients are supported, got {5 + len(extra)}"):
            Camera("c", (1, 1), K, [0.1, 0.2, 0.3, 0.4, 0.5] + extra)
    # integer lists and OpenCV's (3, 1) translation vector become float arrays of the documented shapes
    ic = Camera("c", (2, 2), [[1000, 0, 960], [0, 1000, 540], [0, 0, 1]], [0, 0, 0, 0, 0], np.eye(3, dtype=int),
                np.array([[0], [0], [3]]))
    assert (ic.K.dtype, ic.R.dtype, ic.t.dtype, ic.dist.dtype) == (float,) * 4 and ic.t.shape == (3,)
    # a normalised camera (K = I, focal length 1) is valid
    assert Camera("n", (2, 2), np.eye(3)).project(np.array([0.2, 0.4, 2.0])).tolist() == [0.1, 0.2]
    # a default camera: no distortion, identity pose
    d = Camera("d", (2, 2), K)
    assert d.dist.tolist() == [0.0] * 5 and np.array_equal(d.R, np.eye(3)) and d.t.tolist() == [0.0] * 3
    assert d.dist_model == "opencv"


def test_validate_messages():
    def msg(**kw):
        base = dict(name="c9", size=(10, 10), K=K, dist=np.zeros(5), R=np.eye(3), t=np.zeros(3))
        base.update(kw)
        with pytest.raises(InputError) as e:
            Camera(**base)
        return str(e.value)

    assert msg(dist_model="fisheye") == ("camera 'c9': unknown distortion model 'fisheye' "
                                         "(use one of ('opencv', 'h36m'))")
    bad_K = np.array(K)
    bad_K[0, 2] = np.nan
    assert msg(K=bad_K) == "camera 'c9': intrinsic matrix contains NaN or infinite values"
    assert msg(dist=[0, np.inf]) == "camera 'c9': distortion contains NaN or infinite values"
    assert msg(R=np.full((3, 3), np.nan)) == "camera 'c9': rotation contains NaN or infinite values"
    assert msg(t=[0, 0, np.nan]) == "camera 'c9': translation contains NaN or infinite values"
    for f in ((0.0, 1000.0), (1000.0, 0.0), (-5.0, 1000.0), (1000.0, -5.0)):
        k = np.array(K)
        k[0, 0], k[1, 1] = f
        assert msg(K=k) == "camera 'c9': focal lengths must be positive"
    assert msg(R=np.diag([1.0, 1.0, -1.0])) == ("camera 'c9': rotation is not orthonormal with determinant 1 "
                                               "(|R R^T - I| = 0, det = -1)")
    assert msg(R=np.diag([1.0, 1.0, 1.001])) == ("camera 'c9': rotation is not orthonormal with determinant 1 "
                                                "(|R R^T - I| = 0.002, det = 1.001)")
    # a shear with determinant 1 is not a rotation; nor is a uniform scale with |R R^T - I| < 1e-5 but
    # det - 1 = 1.5e-5
    shear = np.eye(3)
    shear[0, 1] = 0.01
    assert msg(R=shear).startswith("camera 'c9': rotation is not orthonormal with determinant 1 (|R R^T - I| = 0.01")
    assert "det = 1.00001)" in msg(R=np.eye(3) * (1 + 4.9e-6))
    # within 1e-5 is accepted (a rotation read from a text file)
    Camera("ok", (1, 1), K, R=np.diag([1.0, 1.0, 1.0 + 4e-6]))
    Camera("ok", (1, 1), K, R=np.diag([1.0, 1.0, 1.0 - 4e-6]))
    # validate() names the given source instead of the camera
    cam = _cam()
    cam.K[1, 1] = -1
    with pytest.raises(InputError) as e:
        cam.validate("calib.toml")
    assert str(e.value) == "calib.toml: focal lengths must be positive"


# ---- geometry ----------------------------------------------------------------------------------
def test_centre_projection_matrix_and_world_to_camera():
    cam = _cam()
    c = cam.center
    assert np.allclose(cam.R @ c + cam.t, 0, atol=1e-12)
    X = np.array([[0.2, 0.1, 0.5], [-0.3, 0.4, 1.0]])
    Xc = cam.world_to_camera(X)
    assert np.allclose(Xc, (R0 @ X.T).T + T0, atol=1e-12)
    h = np.c_[X, np.ones(2)] @ cam.P.T
    assert np.allclose(h[:, :2] / h[:, 2:], cam.project(X, distort=False), atol=1e-9)
    assert np.allclose(cam.P, np.array(K) @ np.c_[R0, T0])
    P = projection_matrices([cam, Camera("d", (2, 2), K)])
    assert P.shape == (2, 3, 4) and np.allclose(P[1], np.c_[np.array(K), np.zeros(3)])


def test_distortion_coefficient_order_per_model():
    assert _cam([1, 2, 3, 4, 5], "opencv").distortion_coefficients() == (1.0, 2.0, 5.0, 3.0, 4.0)
    assert _cam([1, 2, 3, 4, 5], "h36m").distortion_coefficients() == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert all(type(v) is float for v in _cam().distortion_coefficients())


def test_project_matches_opencv_with_skew_and_behind_the_camera():
    cam = _cam()
    rng = np.random.default_rng(3)
    Xc = np.c_[rng.uniform(-0.6, 0.6, (50, 2)), np.ones(50)] * rng.uniform(1, 5, (50, 1))
    X = (Xc - T0) @ R0
    # OpenCV's projectPoints has no skew: compare without it, then add skew * y_d by hand
    K0 = np.array(K)
    K0[0, 1] = 0.0
    ref, _ = cv2.projectPoints(X, cv2.Rodrigues(R0)[0], T0, K0, np.array(cam.dist))
    ref = ref.reshape(-1, 2)
    yd = (ref[:, 1] - K0[1, 2]) / K0[1, 1]
    assert np.abs(cam.project(X) - (ref + np.c_[2.5 * yd, 0 * yd])).max() < 1e-6
    ref0, _ = cv2.projectPoints(X, cv2.Rodrigues(R0)[0], T0, K0, None)
    ref0 = ref0.reshape(-1, 2)
    y0 = (ref0[:, 1] - K0[1, 2]) / K0[1, 1]
    assert np.abs(cam.project(X, distort=False) - (ref0 + np.c_[2.5 * y0, 0 * y0])).max() < 1e-6
    # behind or on the camera plane: NaN; (..., 3) shapes kept
    behind = np.array([[0.0, 0.0, -1.0], [0.1, 0.0, 0.0]])
    uv = Camera("at origin", (2, 2), K, cam.dist).project(behind.reshape(1, 2, 3))
    assert uv.shape == (1, 2, 2) and np.isnan(uv).all()
    # on the camera plane with x, y != 0 (x/0 = inf): NaN too, not infinity; 0.5 m in front is seen
    origin = Camera("at origin", (2, 2), K)
    assert np.isnan(origin.project(np.array([0.1, 0.2, 0.0]), distort=False)).all()
    assert np.allclose(origin.project(np.array([0.1, 0.2, 0.5]), distort=False),
                       [1000 * 0.2 + 2.5 * 0.4 + 950, 1010 * 0.4 + 530])
    # the inverse pixel mapping undoes the skew, on any leading shape
    grid_uv = np.arange(12.0).reshape(2, 3, 2) * 100
    assert np.allclose(cam.normalized_to_pixels(cam.pixels_to_normalized(grid_uv)), grid_uv, atol=1e-9)
    xy = rng.uniform(-0.5, 0.5, (20, 2))
    assert np.allclose(cam.pixels_to_normalized(cam.normalized_to_pixels(xy)), xy, atol=1e-14)
    uv = cam.normalized_to_pixels(np.array([0.1, 0.2]))
    assert np.allclose(uv, [1000 * 0.1 + 2.5 * 0.2 + 950, 1010 * 0.2 + 530])


@pytest.mark.parametrize("model", ["opencv", "h36m"])
def test_distortion_jacobian_matches_finite_differences(model):
    dist = (-0.28, 0.09, 0.0012, -0.0008, -0.012) if model == "opencv" else (-0.2, 0.25, -0.01, 0.003, -0.002)
    cam = _cam(dist, model)
    rng = np.random.default_rng(4)
    x, y = rng.uniform(-0.6, 0.6, (2, 200))
    xd, yd, j00, j01, j10, j11 = cam.distort_components(x, y, jacobian=True)
    assert np.array_equal(np.c_[xd, yd], np.c_[cam.distort_components(x, y)])
    h = 1e-6
    xp, yp = cam.distort_components(x + h, y)
    xm, ym = cam.distort_components(x - h, y)
    assert np.allclose(j00, (xp - xm) / (2 * h), atol=1e-7) and np.allclose(j10, (yp - ym) / (2 * h), atol=1e-7)
    xp, yp = cam.distort_components(x, y + h)
    xm, ym = cam.distort_components(x, y - h)
    assert np.allclose(j01, (xp - xm) / (2 * h), atol=1e-7) and np.allclose(j11, (yp - ym) / (2 * h), atol=1e-7)


def test_h36m_distortion_formula_by_hand():
    k1, k2, k3, p1, p2 = -0.2, 0.25, -0.01, 0.003, -0.002
    cam = _cam((k1, k2, k3, p1, p2), "h36m")
    x, y = 0.3, -0.2
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tan = p1 * x + p2 * y
    assert np.allclose(cam.distort_normalized([x, y]), [x * (radial + tan) + p1 * r2, y * (radial + tan) + p2 * r2],
                       rtol=1e-14)


# ---- undistortion ------------------------------------------------------------------------------
def test_undistort_converges_and_stops():
    cam = _cam()
    rng = np.random.default_rng(5)
    xy = rng.uniform(-0.6, 0.6, (500, 2))
    xy_d = cam.distort_normalized(xy)
    assert np.abs(cam.undistort_normalized(xy_d) - xy).max() < 1e-12
    # one iteration is not enough here; 0 iterations gives the first-order start xd / radial(xd)
    assert np.abs(cam.undistort_normalized(xy_d, iterations=1) - xy).max() > 1e-6
    k1, k2, k3 = cam.distortion_coefficients()[:3]
    r2 = (xy_d**2).sum(-1, keepdims=True)
    start = xy_d / (1 + r2 * (k1 + r2 * (k2 + r2 * k3)))
    assert np.allclose(cam.undistort_normalized(xy_d, iterations=0), start, rtol=1e-15)
    # a loose tolerance stops early: the result is off by more than the tight one's
    loose = np.abs(cam.undistort_normalized(xy_d, tol=1e-3) - xy).max()
    assert 1e-12 < loose < 1e-3
    # shapes kept, NaN passes through, no distortion returns a copy
    grid = xy_d.reshape(5, 100, 2).copy()
    grid[0, 0] = np.nan
    out = cam.undistort_normalized(grid)
    assert out.shape == (5, 100, 2) and np.isnan(out[0, 0]).all() and np.isfinite(out[1:]).all()
    plain = Camera("p", (2, 2), K)
    out = plain.undistort_normalized(xy_d)
    assert np.array_equal(out, xy_d) and out is not xy_d
    assert plain.undistort_normalized(np.array([[1, 2]])).dtype == float  # integer input, float output
    # a single strongly distorted point is iterated like many
    one = cam.distort_normalized(np.array([[0.55, -0.45]]))
    assert np.abs(cam.undistort_normalized(one) - [[0.55, -0.45]]).max() < 1e-12
    # pixels: undistort_pixels and pixel_rays invert project's distortion
    uv_d = cam.normalized_to_pixels(xy_d)
    assert np.allclose(cam.pixel_rays(uv_d), xy, atol=1e-12)
    assert np.allclose(cam.undistort_pixels(uv_d), cam.normalized_to_pixels(xy), atol=1e-9)


def test_undistort_stops_once_steps_are_below_tolerance():
    """Newton's steps shrink quadratically: iterating 20 times or until the step is below ``tol``
    gives the same answer to 1e-12, and a point already converged is not moved again."""
    cam = _cam((-0.2, 0.25, -0.01, 0.003, -0.002), "h36m")
    xy = np.array([[0.4, -0.3], [0.01, 0.02]])
    xy_d = cam.distort_normalized(xy)
    assert np.abs(cam.undistort_normalized(xy_d, iterations=200, tol=0.0) - xy).max() < 1e-14
    assert np.abs(cam.undistort_normalized(xy_d) - xy).max() < 1e-12


# ---- model conversion --------------------------------------------------------------------------
def test_converted_exact_without_tangential_terms():
    cam = _cam((-0.2, 0.05, 0.0, 0.0, 0.01), "opencv")
    h = cam.converted("h36m")
    assert h.dist_model == "h36m" and h.dist.tolist() == [-0.2, 0.05, 0.01, 0.0, 0.0]
    assert h.conversion_error_px == 0.0
    back = h.converted("opencv")
    assert back.dist.tolist() == [-0.2, 0.05, 0.0, 0.0, 0.01] and back.conversion_error_px == 0.0
    X = np.random.default_rng(6).uniform([-0.5, -0.5, 2], [0.5, 0.5, 4], (50, 3))
    assert np.abs(h.project(X) - cam.project(X)).max() < 1e-9
    same = cam.converted("opencv")
    assert same is not cam and same.dist.tolist() == cam.dist.tolist() and same.dist_model == "opencv"
    assert same.name == cam.name and same.size == cam.size and np.array_equal(same.R, cam.R)
    assert h.name == "c" and h.converted("h36m").dist_model == "h36m"
    # |p1| == |p2| != 0 is tangential distortion, not none
    for p1, p2 in ((0.001, -0.001), (0.002, 0.002)):
        with pytest.raises(InputError, match="no exact conversion"):
            _cam((-0.2, 0.05, p1, p2, 0.01), "opencv").converted("h36m")
    with pytest.raises(InputError) as e:
        cam.converted("kannala")
    assert str(e.value) == "c: unknown distortion model 'kannala'"


@pytest.mark.parametrize("src,dst", [("h36m", "opencv"), ("opencv", "h36m")])
def test_converted_fit_with_tangential_terms(src, dst):
    dist = (-0.2, 0.25, -0.01, 0.003, -0.002) if src == "h36m" else (-0.28, 0.09, 0.0012, -0.0008, -0.012)
    cam = _cam(dist, src)
    with pytest.raises(InputError) as e:
        cam.converted(dst)
    assert str(e.value) == (f"c: no exact conversion from {src} to {dst} distortion with non-zero tangential "
                            "coefficients; pass exact=False for a least-squares fit")
    fit = cam.converted(dst, exact=False)
    assert fit.dist_model == dst
    # the stored error is the largest pixel error over the image grid, measured here another way
    w, hgt = cam.size
    u, v = np.meshgrid(np.linspace(0, w, 41), np.linspace(0, hgt, 41))
    uv = np.c_[u.ravel(), v.ravel()]
    xy = cam.pixel_rays(uv)
    err = np.abs(fit.normalized_to_pixels(fit.distort_normalized(xy)) - uv).max()
    assert fit.conversion_error_px == pytest.approx(err, rel=1e-6, abs=1e-9)
    assert 0 < fit.conversion_error_px < 2.0
    # the coefficients are the linear least-squares optimum over that grid: built here from the
    # camera's own distortion function (unit coefficient vectors, distortion being linear in them)
    # rather than from the converter's hand-written design matrix
    cols = []
    for j in range(5):
        e = np.zeros(5)
        e[j] = 1.0
        cols.append((Camera("e", cam.size, K, e, dist_model=dst).distort_normalized(xy) - xy).T.ravel())
    target = cam.pixels_to_normalized(uv)
    ref = np.linalg.lstsq(np.stack(cols, 1), (target - xy).T.ravel(), rcond=None)[0]
    assert np.allclose(fit.dist, ref, rtol=1e-9, atol=1e-13)
    # the radial terms carry over nearly unchanged
    assert np.allclose(fit.distortion_coefficients()[:2], cam.distortion_coefficients()[:2], rtol=0.2)


def test_converted_fit_is_exact_when_the_models_agree():
    # only p1 (h36m) vs OpenCV: different forms, so the fit is approximate but close near the centre;
    # with a pure-radial source the fit path reproduces the coefficients exactly
    cam = _cam((-0.2, 0.05, 0.01, 0.0, 1e-12), "h36m")
    fit = cam.converted("opencv", exact=False)
    k1, k2, k3, p1, p2 = fit.distortion_coefficients()
    assert np.allclose([k1, k2, k3], [-0.2, 0.05, 0.01], atol=1e-6) and abs(p1) < 1e-9 and abs(p2) < 1e-9
    assert fit.conversion_error_px < 1e-6


def test_quaternion_is_normalised():
    q = np.array([0.9, 0.1, -0.3, 0.2])
    R = rotation_from_quaternion(3.0 * q)
    from scipy.spatial.transform import Rotation

    ref = Rotation.from_quat(np.r_[q[1:], q[0]] / np.linalg.norm(q)).as_matrix()
    assert np.allclose(R, ref, atol=1e-14)
    assert re.fullmatch(r"float\d+", str(R.dtype))
