"""Pinhole cameras with lens distortion: projection of world points and undistortion of pixels.

Two distortion models are supported:

* ``"opencv"``: coefficients (k1, k2, p1, p2, k3) as in OpenCV's ``projectPoints``.
* ``"h36m"``: coefficients (k1, k2, k3, p1, p2) with Human3.6M's tangential term
  ``xd = x*(radial + p1*x + p2*y) + p1*r2`` (see ``data/h36m_cameras.json``), which is not OpenCV's.

Extrinsics follow OpenCV: ``X_cam = R @ X_world + t`` with ``R`` (3, 3) and ``t`` (3,) in metres.
Every function is vectorised over points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simspine.errors import InputError

DISTORTION_MODELS = ("opencv", "h36m")


@dataclass
class Camera:
    """A calibrated camera.

    Attributes:
        name: camera name (matches the 2D keypoint folder for a session).
        size: (width, height) in pixels.
        K: (3, 3) intrinsic matrix in pixels.
        dist: distortion coefficients in the order of ``dist_model``; zeros for none.
        R: (3, 3) world-to-camera rotation.
        t: (3,) world-to-camera translation in metres.
        dist_model: ``"opencv"`` or ``"h36m"``.
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    dist_model: str = "opencv"

    def __post_init__(self):
        self.K = np.asarray(self.K, dtype=float).reshape(3, 3)
        self.R = np.asarray(self.R, dtype=float).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=float).reshape(3)
        d = np.zeros(5)
        dist = np.asarray(self.dist, dtype=float).ravel()
        if dist.size > 5:
            if np.any(dist[5:] != 0):
                raise InputError(self.name, f"only 5 distortion coefficients are supported, got {dist.size}")
            dist = dist[:5]
        d[: dist.size] = dist
        self.dist = d
        self.size = (int(self.size[0]), int(self.size[1]))
        self.validate()

    def validate(self, source: str | None = None) -> None:
        """Raise :class:`InputError` for NaN values or a rotation that is not a rotation."""
        where = source or f"camera {self.name!r}"
        if self.dist_model not in DISTORTION_MODELS:
            raise InputError(where, f"unknown distortion model {self.dist_model!r} (use one of {DISTORTION_MODELS})")
        for label, arr in (("intrinsic matrix", self.K), ("distortion", self.dist),
                           ("rotation", self.R), ("translation", self.t)):
            if not np.all(np.isfinite(arr)):
                raise InputError(where, f"{label} contains NaN or infinite values")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise InputError(where, "focal lengths must be positive")
        err = np.abs(self.R @ self.R.T - np.eye(3)).max()
        if err > 1e-5 or abs(np.linalg.det(self.R) - 1) > 1e-5:
            raise InputError(where, f"rotation is not orthonormal with determinant 1 (|R R^T - I| = {err:.2g}, "
                                    f"det = {np.linalg.det(self.R):.6g})")

    # ---- geometry -------------------------------------------------------------------------
    @property
    def center(self) -> np.ndarray:
        """Optical centre in world coordinates (3,), metres."""
        return -self.R.T @ self.t

    @property
    def P(self) -> np.ndarray:
        """(3, 4) projection matrix without distortion: ``K [R | t]``."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) camera-frame points (metres)."""
        return np.asarray(X, dtype=float) @ self.R.T + self.t

    def distortion_coefficients(self) -> tuple[float, float, float, float, float]:
        """(k1, k2, k3, p1, p2) whatever the storage order of ``dist_model``."""
        if self.dist_model == "opencv":
            k1, k2, p1, p2, k3 = self.dist
        else:
            k1, k2, k3, p1, p2 = self.dist
        return float(k1), float(k2), float(k3), float(p1), float(p2)

    def distort_components(self, x: np.ndarray, y: np.ndarray, jacobian: bool = False):
        """Distorted normalised coordinates of component arrays ``x``, ``y`` (same shape).

        Returns ``(xd, yd)``, or ``(xd, yd, j00, j01, j10, j11)`` with the 2x2 Jacobian entries
        when ``jacobian`` is true. Written on component arrays rather than (N, 2, 2) stacks because
        batched 2x2 algebra is several times slower in numpy; triangulation and undistortion both
        run through here.
        """
        k1, k2, k3, p1, p2 = self.distortion_coefficients()
        xx, yy, xy = x * x, y * y, x * y
        r2 = xx + yy
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        opencv = self.dist_model == "opencv"
        if opencv:
            xd = x * radial + 2 * p1 * xy + p2 * (r2 + 2 * xx)
            yd = y * radial + p1 * (r2 + 2 * yy) + 2 * p2 * xy
        else:
            tan = p1 * x + p2 * y
            xd = x * (radial + tan) + p1 * r2
            yd = y * (radial + tan) + p2 * r2
        if not jacobian:
            return xd, yd
        drad2 = 2 * (k1 + r2 * (2 * k2 + 3 * k3 * r2))  # 2 * d radial / d r2
        if opencv:
            j00 = radial + xx * drad2 + 2 * p1 * y + 6 * p2 * x
            j01 = xy * drad2 + 2 * p1 * x + 2 * p2 * y
            j10 = j01
            j11 = radial + yy * drad2 + 6 * p1 * y + 2 * p2 * x
        else:
            j00 = radial + tan + x * (drad2 * x + p1) + 2 * p1 * x
            j01 = x * (drad2 * y + p2) + 2 * p1 * y
            j10 = y * (drad2 * x + p1) + 2 * p2 * x
            j11 = radial + tan + y * (drad2 * y + p2) + 2 * p2 * y
        return xd, yd, j00, j01, j10, j11

    def distort_normalized(self, xy: np.ndarray) -> np.ndarray:
        """Apply lens distortion to (..., 2) normalised image coordinates (x = X/Z, y = Y/Z)."""
        xy = np.asarray(xy, dtype=float)
        return np.stack(self.distort_components(xy[..., 0], xy[..., 1]), axis=-1)

    def normalized_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) (distorted) normalised coordinates -> pixels through K (skew included)."""
        K = self.K
        u = K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2]
        v = K[1, 1] * xy[..., 1] + K[1, 2]
        return np.stack([u, v], axis=-1)

    def pixels_to_normalized(self, uv: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalized_to_pixels` (no distortion removal)."""
        K = self.K
        y = (uv[..., 1] - K[1, 2]) / K[1, 1]
        x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
        return np.stack([x, y], axis=-1)

    def project(self, X: np.ndarray, distort: bool = True) -> np.ndarray:
        """Project world points (..., 3) in metres to pixels (..., 2).

        Points at or behind the camera plane come out as NaN.
        """
        X = np.asarray(X, dtype=float)
        Xc = X @ self.R.T + self.t
        z = Xc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = Xc[..., :2] / np.where(z > 0, z, np.nan)[..., None]
        if distort:
            xy = self.distort_normalized(xy)
        return self.normalized_to_pixels(xy)

    def undistort_normalized(self, xy_d: np.ndarray, iterations: int = 20, tol: float = 1e-10) -> np.ndarray:
        """Remove distortion from normalised coordinates (..., 2) by Newton's method.

        Written by hand (not ``cv2.undistortPoints``) because OpenCV has no Human3.6M model and its
        fixed-point iteration stops around 1e-3 px for Human3.6M's strong radial distortion. Starts
        from the first-order inverse ``xd / radial(xd)`` and iterates only the points not yet
        converged (``tol`` in normalised units, about 1e-7 px).
        """
        xy_d = np.asarray(xy_d, dtype=float)
        if not np.any(self.dist):
            return xy_d.copy()
        shape = xy_d.shape
        flat = xy_d.reshape(-1, 2)
        xd, yd = flat[:, 0], flat[:, 1]
        k1, k2, k3 = self.distortion_coefficients()[:3]
        r2 = xd * xd + yd * yd
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        x, y = xd / radial, yd / radial
        act = np.nonzero(np.isfinite(x) & np.isfinite(y))[0]
        prev = np.zeros(act.size)  # previous step size (0: none yet)
        for _ in range(iterations):
            if act.size == 0:
                break
            xa, ya = x[act], y[act]
            fx, fy, a, b, c, d = self.distort_components(xa, ya, jacobian=True)
            rx, ry = fx - xd[act], fy - yd[act]
            det = a * d - b * c
            sx = (d * rx - b * ry) / det
            sy = (a * ry - c * rx) / det
            x[act] = xa - sx
            y[act] = ya - sy
            size = np.abs(sx) + np.abs(sy)
            # Newton converges quadratically: the next step is about size^2 / prev
            keep = (size > tol) & (size * size > tol * prev)
            act, prev = act[keep], size[keep]
        return np.stack([x, y], -1).reshape(shape)

    def undistort_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Distorted pixels (..., 2) -> the pixels an ideal pinhole camera would see (..., 2)."""
        return self.normalized_to_pixels(self.undistort_normalized(self.pixels_to_normalized(np.asarray(uv, float))))

    def pixel_rays(self, uv: np.ndarray) -> np.ndarray:
        """Undistorted normalised coordinates (..., 2) of pixels: the ray direction is (x, y, 1)."""
        return self.undistort_normalized(self.pixels_to_normalized(np.asarray(uv, float)))

    # ---- distortion model conversion ------------------------------------------------------
    def converted(self, model: str, exact: bool = True, grid: int = 41) -> Camera:
        """The same camera under another distortion model.

        The conversion is exact when the tangential coefficients are zero (the radial terms are
        shared). Otherwise the two tangential models differ in form; with ``exact=True`` this
        raises, with ``exact=False`` the target coefficients are fitted by linear least squares
        over the image (the distortion is linear in its coefficients) and the fit's largest
        error in pixels is stored in ``camera.conversion_error_px``.
        """
        if model not in DISTORTION_MODELS:
            raise InputError(self.name, f"unknown distortion model {model!r}")
        if model == self.dist_model:
            return Camera(self.name, self.size, self.K, self.dist, self.R, self.t, model)
        k1, k2, k3, p1, p2 = self.distortion_coefficients()
        tangential = abs(p1) + abs(p2)
        if tangential == 0:
            new = [k1, k2, 0.0, 0.0, k3] if model == "opencv" else [k1, k2, k3, 0.0, 0.0]
            cam = Camera(self.name, self.size, self.K, new, self.R, self.t, model)
            cam.conversion_error_px = 0.0
            return cam
        if exact:
            raise InputError(self.name, f"no exact conversion from {self.dist_model} to {model} distortion with "
                                        "non-zero tangential coefficients; pass exact=False for a least-squares fit")
        w, h = self.size
        u, v = np.meshgrid(np.linspace(0, w, grid), np.linspace(0, h, grid))
        target = self.pixels_to_normalized(np.stack([u.ravel(), v.ravel()], -1))
        xy = self.undistort_normalized(target)
        x, y = xy[:, 0], xy[:, 1]
        r2 = x * x + y * y
        dx, dy = target[:, 0] - x, target[:, 1] - y
        if model == "opencv":  # unknowns k1 k2 p1 p2 k3
            ax = np.stack([x * r2, x * r2**2, 2 * x * y, r2 + 2 * x * x, x * r2**3], 1)
            ay = np.stack([y * r2, y * r2**2, r2 + 2 * y * y, 2 * x * y, y * r2**3], 1)
        else:  # unknowns k1 k2 k3 p1 p2
            ax = np.stack([x * r2, x * r2**2, x * r2**3, x * x + r2, x * y], 1)
            ay = np.stack([y * r2, y * r2**2, y * r2**3, x * y, y * y + r2], 1)
        coef = np.linalg.lstsq(np.vstack([ax, ay]), np.concatenate([dx, dy]), rcond=None)[0]
        cam = Camera(self.name, self.size, self.K, coef, self.R, self.t, model)
        err = cam.normalized_to_pixels(cam.distort_normalized(xy)) - self.normalized_to_pixels(target)
        cam.conversion_error_px = float(np.abs(err).max())
        return cam


def rotation_from_quaternion(wxyz) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(wxyz, dtype=float) / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def projection_matrices(cameras: list[Camera]) -> np.ndarray:
    """(C, 3, 4) stack of ``K [R | t]``."""
    return np.stack([c.P for c in cameras])
