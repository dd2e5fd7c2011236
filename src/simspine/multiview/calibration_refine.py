"""Refine a rig's extrinsics (optionally focal lengths) on a session's own keypoints: bundle
adjustment.

What it solves: the cameras' poses and the 3D points that best explain the confident 2D keypoints,
minimising a robust cost (``soft_l1`` or ``huber``, scale ``f_scale_px`` pixels) of the
reprojection residuals in pixels, lens distortion included, with
:func:`scipy.optimize.least_squares` (trust-region reflective, finite differences over the sparse
Jacobian structure: each residual depends on one camera and one point, ``jac_sparsity``).

Points: the session is triangulated with the current calibration (robust triangulation) and the
valid keypoints of evenly spaced frames (about ``max_points`` of them) become the points; every observation
at or above ``min_conf`` of such a point takes part, *including the views the triangulation
excluded as inconsistent* (those are the ones that tell where a misplaced camera really points).

Gauge: the solution of a bundle adjustment is defined up to a similarity of the world (rotation,
translation, scale: 7 degrees of freedom). Here

* one camera (``fixed_camera``; by default the one whose observations agree best with the others,
  see :mod:`simspine.multiview.calibration_health`) is held at its pose: rotation and translation
  (6 degrees of freedom), so the world frame stays the calibration's world frame;
* the scale is kept by parametrising a second camera's (``scale_camera``, by default the next
  best) centre on the sphere around the fixed camera's centre whose radius is their calibrated
  distance: that camera moves by two angles, never closer or farther, so the scale cannot drift.

The other cameras have a rotation (a rotation vector applied to the calibrated rotation) and a
centre (3 coordinates); with ``refine_focal`` every camera but the fixed one also has a common
factor on fx and fy (principal point, aspect and distortion are kept).

Centre prior: a bump or a wrong calibration shows mostly in a camera's rotation, and a human-sized
point cloud seen from ~5 m pins rotations down poorly when the centres are free too (a camera
can trade a rotation for a shift of its centre). On a 2 s synthetic walk (1500 points, 3 px noise,
Human3.6M rig) the Fisher information gives a rotation standard deviation of up to 0.19° per
axis with free centres, 0.06° with the default prior (σ = 2 mm per coordinate, ``centre_sigma_m``).
The prior is a residual ``(centre - calibrated centre) / σ`` under the same robust loss as the
pixels, so beyond a few σ it pulls with a bounded force and a camera that really moved still moves.

When the fixed camera's pose and the fixed baseline are right, the refined cameras are in the true
world frame and can be compared with the truth directly. If the fixed camera itself were off, the
whole rig would come out consistently in that camera's (wrong) frame: compare rigs then after
aligning them by a similarity.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation

from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.io.session import Session2D
from simspine.multiview.calibration_health import camera_statistics
from simspine.multiview.triangulation import TriangulationOptions, TriangulationResult, triangulate

LOSSES = ("soft_l1", "huber", "cauchy", "linear")


@dataclass
class RefineOptions:
    """Parameters of :func:`refine_calibration`.

    Attributes:
        min_conf: observations under this detector confidence are left out.
        max_points: about this many triangulated keypoints become points, from evenly spaced
            frames (a few thousand pin a rig down to hundredths of a degree; more only cost time).
        loss, f_scale_px: robust loss of :func:`scipy.optimize.least_squares` and its scale (px):
            residuals much larger than ``f_scale_px`` weigh in proportion to their square root
            (``soft_l1``) or linearly (``huber``) rather than their square.
        refine_focal: also refine each camera's focal length (one factor on fx and fy).
        fixed_camera: name of the camera held fixed (default: the one that agrees best).
        scale_camera: name of the camera whose distance to the fixed one is kept (default: the
            next best).
        max_nfev: most residual evaluations of the solver.
        centre_sigma_m: camera centres are held near their calibrated positions by a prior with
            this standard deviation per coordinate (metres; under the same robust loss, so a
            camera that really moved by several σ can still move); None or 0 frees them.
        triangulation: options of the triangulation that gives the initial points.
    """

    min_conf: float = 0.5
    max_points: int = 1500
    loss: str = "soft_l1"
    f_scale_px: float = 3.0
    refine_focal: bool = False
    fixed_camera: str | None = None
    scale_camera: str | None = None
    max_nfev: int = 200
    centre_sigma_m: float | None = 0.002
    triangulation: TriangulationOptions = field(default_factory=TriangulationOptions)


@dataclass
class RefineResult:
    """Output of :func:`refine_calibration`.

    Attributes:
        cameras: the refined cameras (same order and names).
        fixed_camera, scale_camera: the gauge cameras (see the module docstring).
        before, after: per-camera statistics (:func:`~simspine.multiview.calibration_health.camera_statistics`)
            of the whole session triangulated with the calibration before / after.
        rotation_change_deg, centre_change_mm, focal_change: per camera name, how much it moved.
        points, observations: size of the adjustment.
        cost_before, cost_after: the robust cost (least_squares' ``cost``) at start and end.
        nfev, seconds, message: solver evaluations, wall time, and its termination message.
    """

    cameras: list[Camera]
    fixed_camera: str
    scale_camera: str
    before: list[dict]
    after: list[dict]
    rotation_change_deg: dict[str, float]
    centre_change_mm: dict[str, float]
    focal_change: dict[str, float]
    points: int
    observations: int
    cost_before: float
    cost_after: float
    nfev: int
    seconds: float
    message: str = ""


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle (degrees) of the rotation ``Ra Rb^T`` between two orientations."""
    return float(np.rad2deg(Rotation.from_matrix(np.asarray(Ra) @ np.asarray(Rb).T).magnitude()))


def unswapped(cameras: list[Camera], session: Session2D, options: TriangulationOptions) -> Session2D:
    """``session`` with its left/right-swapped views relabelled as :func:`triangulate_session`
    does (when ``options.swap_fix``), judged with ``cameras``."""
    if not getattr(options, "swap_fix", False):
        return session
    from simspine.multiview.lr_swap import SwapOptions, fix_lr_swaps, swap_index

    uv, conf, swapped = fix_lr_swaps(cameras, session.keypoints, session.conf, swap_index(session.keypoint_names),
                                     SwapOptions(conf_threshold=options.conf_threshold), options)
    return dataclasses.replace(session, cameras=list(cameras), keypoints=uv, conf=conf) if swapped.any() else session


def session_statistics(cameras: list[Camera], session: Session2D, options: TriangulationOptions | None = None
                       ) -> tuple[TriangulationResult, list[dict]]:
    """Triangulate ``session`` (its 2D keypoints as given) with ``cameras``; the result and its
    per-camera statistics."""
    o = options or TriangulationOptions()
    res = triangulate(cameras, session.keypoints, session.conf, o)
    confident = np.moveaxis(np.isfinite(session.keypoints).all(-1) & (np.nan_to_num(session.conf) >= o.conf_threshold),
                            0, -1)
    return res, camera_statistics(res.view_error, res.views_used, res.valid, confident, [c.name for c in cameras])


def _pick_gauge(stats: list[dict], names: list[str], fixed: str | None, scale: str | None) -> tuple[int, int]:
    for n in (fixed, scale):
        if n is not None and n not in names:
            raise InputError(None, f"no camera named {n!r} (cameras: {', '.join(names)})")
    # best agreement first: small median error of all its confident observations, many of them
    def score(c):
        m = stats[c]["median_px"]
        return (m is None or stats[c]["observations"] < 30, np.inf if m is None else m)

    order = sorted(range(len(names)), key=score)
    f = names.index(fixed) if fixed is not None else order[0]
    s = names.index(scale) if scale is not None else next(c for c in order if c != f)
    if s == f:
        raise InputError(None, f"the scale camera must differ from the fixed camera ({names[f]})")
    return f, s


class _Problem:
    """Parameter layout and residuals of the adjustment."""

    def __init__(self, cameras: list[Camera], fixed: int, scale: int, focal: bool, X0: np.ndarray,
                 cam_idx: np.ndarray, pt_idx: np.ndarray, uv: np.ndarray, centre_sigma_m: float | None = None):
        self.cams0 = cameras
        self.sigma = centre_sigma_m
        self.fixed, self.scale, self.focal = fixed, scale, focal
        self.cam_idx, self.pt_idx, self.uv = cam_idx, pt_idx, uv
        self.n_points = len(X0)
        c0 = cameras[fixed].center
        d = cameras[scale].center - c0
        self.radius = float(np.linalg.norm(d))
        if self.radius <= 0:
            raise InputError(None, f"cameras {cameras[fixed].name} and {cameras[scale].name} share one centre")
        u = d / self.radius
        e1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        self.basis = (u, e1, np.cross(u, e1))
        # slices of each camera's parameters: rotation (3), centre (3, or 2 angles), focal (1)
        self.slices: dict[int, dict[str, slice]] = {}
        i = 0
        for c in range(len(cameras)):
            if c == fixed:
                continue
            s = {"rot": slice(i, i + 3)}
            i += 3
            n = 2 if c == scale else 3
            s["centre"] = slice(i, i + n)
            i += n
            if focal:
                s["focal"] = slice(i, i + 1)
                i += 1
            self.slices[c] = s
        self.n_cam_params = i
        self.x0 = np.concatenate([np.zeros(i), np.asarray(X0, float).ravel()])
        self.obs_by_cam = [np.nonzero(cam_idx == c)[0] for c in range(len(cameras))]

    def cameras(self, x: np.ndarray) -> list[Camera]:
        out = []
        for c, cam in enumerate(self.cams0):
            if c == self.fixed:
                out.append(cam)
                continue
            s = self.slices[c]
            R = Rotation.from_rotvec(x[s["rot"]]).as_matrix() @ cam.R
            p = x[s["centre"]]
            if c == self.scale:
                u, e1, e2 = self.basis
                d = u + p[0] * e1 + p[1] * e2
                centre = self.cams0[self.fixed].center + self.radius * d / np.linalg.norm(d)
            else:
                centre = cam.center + p
            K = cam.K.copy()
            if self.focal:
                k = float(np.exp(x[s["focal"]][0]))
                K[0, 0] *= k
                K[0, 1] *= k
                K[1, 1] *= k
            out.append(Camera(cam.name, cam.size, K, cam.dist, R, -R @ centre, cam.dist_model))
        return out

    def residuals(self, x: np.ndarray) -> np.ndarray:
        X = x[self.n_cam_params:].reshape(-1, 3)
        r = np.empty((len(self.uv), 2))
        for cam, obs in zip(self.cameras(x), self.obs_by_cam, strict=True):
            if obs.size:
                r[obs] = cam.project(X[self.pt_idx[obs]]) - self.uv[obs]
        r = np.nan_to_num(r, nan=1e3).ravel()  # behind a camera: a large, constant residual
        if not self.sigma:
            return r
        prior = [(cam.center - c0.center) / self.sigma for c, (cam, c0) in enumerate(zip(self.cameras(x), self.cams0,
                                                                                            strict=True))
                 if c != self.fixed]
        return np.concatenate([r, np.ravel(prior)])

    def sparsity(self):
        n_obs = len(self.uv)
        n_prior = 3 * len(self.slices) if self.sigma else 0
        A = lil_matrix((2 * n_obs + n_prior, len(self.x0)), dtype=np.int8)
        if n_prior:
            for i, s in enumerate(self.slices.values()):
                A[2 * n_obs + 3 * i: 2 * n_obs + 3 * i + 3, s["centre"]] = 1
        rows = np.arange(n_obs)
        for c, s in self.slices.items():
            obs = self.obs_by_cam[c]
            lo = s["rot"].start
            hi = (s.get("focal") or s["centre"]).stop
            for j in range(lo, hi):
                A[2 * obs, j] = 1
                A[2 * obs + 1, j] = 1
        for k in range(3):
            cols = self.n_cam_params + 3 * self.pt_idx + k
            A[2 * rows, cols] = 1
            A[2 * rows + 1, cols] = 1
        return A


def select_observations(session: Session2D, res: TriangulationResult, options: RefineOptions):
    """Points and observations of the adjustment: the valid triangulated keypoints of evenly
    spaced frames (about ``max_points`` of them), and every finite observation of them at or above
    ``min_conf``. Returns ``X0`` (N, 3), camera index, point index and pixels of each observation."""
    valid = res.valid  # (T, K)
    frames = np.nonzero(valid.any(1))[0]
    n = int(np.ceil(options.max_points / max(valid[frames].sum(1).mean(), 1.0))) if frames.size else 0
    if frames.size > n:
        frames = frames[np.round(np.linspace(0, frames.size - 1, max(n, 2))).astype(int)]
    uv = session.keypoints[:, frames]  # (C, F, K, 2)
    conf = np.nan_to_num(session.conf[:, frames])
    ok = valid[frames][None] & np.isfinite(uv).all(-1) & (conf >= options.min_conf)  # (C, F, K)
    enough = ok.sum(0) >= 2
    ok &= enough[None]
    f_idx, k_idx = np.nonzero(enough)
    pid = -np.ones(enough.shape, int)
    pid[f_idx, k_idx] = np.arange(f_idx.size)
    X0 = res.points[frames][f_idx, k_idx]
    c_i, f_i, k_i = np.nonzero(ok)
    return X0, c_i, pid[f_i, k_i], uv[c_i, f_i, k_i]


def refine_calibration(session: Session2D, options: RefineOptions | None = None, log=None) -> RefineResult:
    """Bundle adjustment of ``session``'s cameras on its own keypoints; see the module docstring."""
    o = options or RefineOptions()
    if o.loss not in LOSSES:
        raise InputError(None, f"unknown loss {o.loss!r} (use one of {', '.join(LOSSES)})")
    if session.n_cameras < 2:
        raise InputError(None, "refining a calibration needs at least two cameras")
    t0 = time.perf_counter()
    names = session.camera_names
    # the adjustment uses the detections as given (the robust loss copes with left/right swaps; undoing
    # swaps judged with a calibration that is off relabels correct views); the figures before and
    # after are those triangulate_session reports (swaps undone with the calibration in question)
    _, before = session_statistics(session.cameras, unswapped(session.cameras, session, o.triangulation),
                                   o.triangulation)
    res, raw = session_statistics(session.cameras, session, o.triangulation)
    fixed, scale = _pick_gauge(raw, names, o.fixed_camera, o.scale_camera)
    X0, cam_idx, pt_idx, uv = select_observations(session, res, o)
    if len(X0) < 20:
        raise InputError(None, f"only {len(X0)} triangulated keypoints seen by two or more cameras with confidence "
                               f">= {o.min_conf}; too few to refine the calibration (lower --min-conf?)")
    prob = _Problem(session.cameras, fixed, scale, o.refine_focal, X0, cam_idx, pt_idx, uv, o.centre_sigma_m)
    if log:
        log(f"bundle adjustment: {len(X0)} points, {len(uv)} observations; {names[fixed]} fixed, distance {names[fixed]}-{names[scale]} kept "
            f"({prob.radius:.3f} m)")
    sol = least_squares(prob.residuals, prob.x0, jac_sparsity=prob.sparsity(), loss=o.loss, f_scale=o.f_scale_px,
                        x_scale="jac", method="trf", max_nfev=o.max_nfev)
    cams = prob.cameras(sol.x)
    _, after = session_statistics(cams, unswapped(cams, session, o.triangulation), o.triangulation)
    rot = {c.name: rotation_angle_deg(c.R, c0.R) for c, c0 in zip(cams, session.cameras, strict=True)}
    ctr = {c.name: float(np.linalg.norm(c.center - c0.center) * 1000) for c, c0 in zip(cams, session.cameras, strict=True)}
    foc = {c.name: float(c.K[0, 0] / c0.K[0, 0]) for c, c0 in zip(cams, session.cameras, strict=True)}
    cost0 = float(0.5 * np.sum(_rho(prob.residuals(prob.x0), o)))
    return RefineResult(cams, names[fixed], names[scale], before, after, rot, ctr, foc, len(X0), len(uv), cost0,
                        float(sol.cost), int(sol.nfev), time.perf_counter() - t0, str(sol.message))


def _rho(r: np.ndarray, o: RefineOptions) -> np.ndarray:
    """least_squares' robust loss of residuals ``r`` (the cost is half its sum)."""
    z = (r / o.f_scale_px) ** 2
    if o.loss == "soft_l1":
        rho = 2 * (np.sqrt(1 + z) - 1)
    elif o.loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    elif o.loss == "cauchy":
        rho = np.log1p(z)
    else:
        rho = z
    return rho * o.f_scale_px ** 2


def format_refinement(r: RefineResult) -> str:
    """Per-camera residuals before and after, and how much each camera moved."""
    from simspine.bench.table import format_table

    focal = any(abs(v - 1) > 0 for v in r.focal_change.values())
    head = ["camera", "median px before", "p95 px before", "inconsistent % before", "median px after",
            "p95 px after", "inconsistent % after", "rotation change deg", "centre shift mm"]
    if focal:
        head.append("focal x")
    rows = []
    for b, a in zip(r.before, r.after, strict=True):
        n = b["name"]
        role = " (fixed)" if n == r.fixed_camera else " (scale)" if n == r.scale_camera else ""
        row = [n + role, _n(b["median_px"]), _n(b["p95_px"]), 100 * _n(b["inconsistent_share"]), _n(a["median_px"]),
               _n(a["p95_px"]), 100 * _n(a["inconsistent_share"]), r.rotation_change_deg[n], r.centre_change_mm[n]]
        if focal:
            row.append(r.focal_change[n])
        rows.append(row)
    table = format_table(head, rows, floatfmt=".2f")
    return (f"{table}\n(median/p95: reprojection error of every confident observation of a triangulated point, "
            f"used or excluded; whole session triangulated with the calibration before/after)\n"
            f"bundle adjustment: {r.points} points, {r.observations} observations, robust cost {r.cost_before:.4g} -> "
            f"{r.cost_after:.4g}, {r.nfev} evaluations, {r.seconds:.1f} s ({r.message})")


def _n(v) -> float:
    return float("nan") if v is None else float(v)


def write_refined(path, result: RefineResult, session: Session2D):
    """Write the refined rig as a Pose2Sim calibration TOML (atomically); returns the path.

    Cameras of the session's calibration file that the session did not use are written unchanged,
    so the file can replace the original.
    """
    from simspine.calibration import load_calibration, write_calibration_toml

    refined = {c.name: c for c in result.cameras}
    cams = list(result.cameras)
    src = session.meta.get("calibration")
    if src:
        try:
            cams = [refined.get(c.name, c) for c in load_calibration(src)]
        except InputError:
            pass  # the original cannot be read again: write the session's cameras
    return write_calibration_toml(path, cams, fit_distortion=True, world_frame=session.world_frame)


def with_calibration(session: Session2D, path) -> Session2D:
    """``session`` with its cameras replaced by the same-named cameras of calibration file ``path``
    (a session ``.npz`` carries its own cameras, which a ``--calibration`` file overrides)."""
    from simspine.calibration import load_calibration

    by_name = {c.name: c for c in load_calibration(path)}
    missing = [n for n in session.camera_names if n not in by_name]
    if missing:
        raise InputError(path, f"no camera {', '.join(missing)} in this calibration (it has {', '.join(by_name)})")
    return dataclasses.replace(session, cameras=[by_name[n] for n in session.camera_names],
                               meta={**session.meta, "calibration": str(path)})
