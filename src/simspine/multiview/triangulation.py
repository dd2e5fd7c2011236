"""Robust multi-view triangulation, vectorised over all points at once.

Pipeline per point (all points of all frames are processed together; the only Python loops run
over cameras, camera pairs and iterations):

1. **Confidence threshold** — a view takes part only if its 2D point is finite and its detector
   confidence is at least ``conf_threshold``.
2. **Consistency (pair hypotheses, exhaustive RANSAC)** — every pair of usable views gives a
   two-view triangulation; each hypothesis is scored by the truncated (MSAC) reprojection cost
   over all usable views and the best one defines the inlier views (error below
   ``consistency_threshold_px``). With C cameras this costs C(C-1)/2 small linear solves.
3. **Confidence-weighted DLT** on the inlier views, in undistorted normalised ray coordinates
   (:meth:`Camera.pixel_rays`), solved in inhomogeneous form (3 unknowns, batched normal
   equations).
4. **Robust refinement** — batched Gauss-Newton / IRLS minimising the Huber cost of the
   reprojection error *in pixels, distortion included*, weighted by confidence, with the analytic
   Jacobian of the projection.
5. **Reprojection pruning** — while a point's worst used view has an error above
   ``reproj_threshold_px`` and more than two views remain, that view is dropped and the point is
   refined again.

A point is valid when at least two views remain and its mean reprojection error is at most
``reproj_threshold_px`` (or ``max_error_px`` if given).

Shapes: 2D input ``(C, *S, 2)`` pixels and ``(C, *S)`` confidences for C cameras and any point
shape S (typically frames × keypoints); outputs have shape S. 3D points are in metres in the
calibration's world frame.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from simspine.cameras import Camera
from simspine.errors import InputError


@dataclass
class TriangulationOptions:
    """Parameters of :func:`triangulate` (defaults follow Pose2Sim's where it has one).

    Attributes:
        conf_threshold: views with detector confidence below this are ignored (Pose2Sim: 0.3).
        reproj_threshold_px: a used view whose reprojection error exceeds this is dropped
            (worst first, while more than two views remain); Pose2Sim uses 15 px.
        consistency: run the pair-hypothesis consistency step (step 2).
        consistency_threshold_px: inlier threshold of the consistency step.
        reject_ambiguous: mark points invalid when two disjoint pairs of views each agree but
            disagree with each other (which pair is right cannot be told from one frame).
        max_uncertainty_mm_per_px: mark points invalid whose used views give a 3D error above
            this many mm per px of image noise (nearly parallel rays, e.g. only two facing
            cameras left); ``None`` keeps them.
        huber_delta_px: Huber threshold on the 2D reprojection residual norm (pixels); residuals
            larger than this get weight ``delta/|r|``. ``inf`` gives plain least squares.
        iterations: maximum Gauss-Newton/IRLS iterations per refinement.
        tol_m: stop refining when no point moves by more than this (metres).
        max_error_px: mean reprojection error above which a point is marked invalid
            (default: ``reproj_threshold_px``).
        swap_fix: undo left/right swaps of whole views over runs of frames before triangulating
            (:mod:`simspine.multiview.lr_swap`). Needs a time axis and keypoint names, so only
            :func:`simspine.multiview.reconstruct.triangulate_session` applies it;
            :func:`triangulate` ignores it.
        chunk: points per work unit (arrays of this length stay in cache).
        workers: threads (``None``: up to 4, at most the CPU count; 1: no threads).
    """

    conf_threshold: float = 0.3
    reproj_threshold_px: float = 15.0
    consistency: bool = True
    consistency_threshold_px: float = 20.0
    reject_ambiguous: bool = True
    max_uncertainty_mm_per_px: float | None = 25.0
    huber_delta_px: float = 5.0
    iterations: int = 10
    tol_m: float = 1e-6
    max_error_px: float | None = None
    swap_fix: bool = True
    chunk: int = 65536
    workers: int | None = None


@dataclass
class TriangulationResult:
    """Output of :func:`triangulate` for points of shape S (e.g. (T, K)) and C cameras.

    Attributes:
        points: (*S, 3) metres, calibration world frame; NaN where not valid.
        reproj_error: (*S,) mean reprojection error over the used views, pixels (NaN if invalid).
        view_error: (*S, C) reprojection error in each camera (pixels, NaN where unobserved),
            whether or not that view was used.
        views_used: (*S, C) bool, views that took part in the final estimate.
        valid: (*S,) bool.
        uncertainty_m_per_px: (*S,) first-order RMS 3D error per pixel of image noise in the
            used views (metres per px; NaN if invalid): a measure of the views' geometry.
    """

    points: np.ndarray
    reproj_error: np.ndarray
    view_error: np.ndarray
    views_used: np.ndarray
    valid: np.ndarray
    uncertainty_m_per_px: np.ndarray | None = None


# ---- input checks -------------------------------------------------------------------------------
def _prepare(cameras: list[Camera], uv, conf):
    if len(cameras) < 2:
        raise InputError(None, f"triangulation needs at least two cameras, got {len(cameras)}")
    uv = np.asarray(uv, dtype=float)
    C = len(cameras)
    if uv.ndim < 2 or uv.shape[0] != C or uv.shape[-1] != 2:
        raise InputError(None, f"2D points must have shape (C={C}, ..., 2), got {uv.shape}")
    shape = uv.shape[1:-1]
    if conf is None:
        conf = np.ones((C, *shape))
    conf = np.asarray(conf, dtype=float)
    if conf.shape != (C, *shape):
        raise InputError(None, f"confidences must have shape {(C, *shape)}, got {conf.shape}")
    return uv.reshape(C, -1, 2), conf.reshape(C, -1), shape


def _rays(cameras, uv):
    """(C, N, 2) undistorted normalised coordinates of pixel observations."""
    return np.stack([cam.pixel_rays(uv[c]) for c, cam in enumerate(cameras)])


#: upper-triangle entries of a symmetric 3×3 matrix
_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


# ---- linear triangulation -----------------------------------------------------------------------
def _solve3(H: dict, g: list) -> np.ndarray:
    """Solve batched symmetric 3×3 systems ``H x = g`` by cofactors (NaN where singular).

    ``H`` maps the upper-triangle index pairs in :data:`_PAIRS` to (N,) arrays; ``g`` is three
    (N,) arrays. Returns (N, 3).
    """
    a, b, c = H[0, 0], H[0, 1], H[0, 2]
    d, e, f = H[1, 1], H[1, 2], H[2, 2]
    A = d * f - e * e
    B = c * e - b * f
    Cc = b * e - c * d
    D = a * f - c * c
    E = b * c - a * e
    F = a * d - b * b
    det = a * A + b * B + c * Cc
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(det) > 0, det, np.nan)
    out = np.empty((len(a), 3))
    out[:, 0] = (A * g[0] + B * g[1] + Cc * g[2]) * inv
    out[:, 1] = (B * g[0] + D * g[1] + E * g[2]) * inv
    out[:, 2] = (Cc * g[0] + E * g[1] + F * g[2]) * inv
    return out


def _dlt_normal(cameras, rays, w) -> np.ndarray:
    """Weighted linear triangulation from normalised rays.

    Each view contributes the two equations ``(x r3 - r1) X = t1 - x t3`` and
    ``(y r3 - r2) X = t2 - y t3`` (rows of ``[R | t]``), weighted by ``w`` (C, N); the 3×3
    normal equations are accumulated per camera (on component arrays) and solved for all points
    at once. The residual of each equation is depth × the ray's angular error, the classic
    algebraic DLT cost.
    """
    N = rays.shape[1]
    H = {ij: np.zeros(N) for ij in _PAIRS}
    g = [np.zeros(N), np.zeros(N), np.zeros(N)]
    for c, cam in enumerate(cameras):
        R, t = cam.R, cam.t
        wc = w[c]
        use = wc > 0
        if not use.any():
            continue
        for row in (0, 1):
            coord = np.where(use, rays[c, :, row], 0.0)
            a = [coord * R[2, k] - R[row, k] for k in range(3)]
            b = t[row] - coord * t[2]
            aw = [wc * ak for ak in a]
            for i, j in _PAIRS:
                H[i, j] += aw[i] * a[j]
            for i in range(3):
                g[i] += aw[i] * b
    return _solve3(H, g)


def triangulate_dlt(cameras: list[Camera], uv, conf=None, conf_threshold: float = 0.0) -> np.ndarray:
    """Plain (non-robust) DLT: all finite views above ``conf_threshold``, equally weighted.

    Uses undistorted normalised rays, so lens distortion is accounted for in the input but not
    in the cost. Returns (*S, 3) metres; NaN where fewer than two views are usable.
    """
    uv2, conf2, shape = _prepare(cameras, uv, conf)
    rays = _rays(cameras, uv2)
    use = np.isfinite(rays).all(-1) & (conf2 >= conf_threshold)
    X = _dlt_normal(cameras, rays, use.astype(float))
    X[use.sum(0) < 2] = np.nan
    return X.reshape(*shape, 3)


# ---- projection with Jacobian (component arrays: numpy is fastest on long 1-D arrays) ---------
def _cam_points(cam: Camera, X: np.ndarray):
    R, t = cam.R, cam.t
    X0, X1, X2 = X[:, 0], X[:, 1], X[:, 2]
    xc = R[0, 0] * X0 + R[0, 1] * X1 + R[0, 2] * X2 + t[0]
    yc = R[1, 0] * X0 + R[1, 1] * X1 + R[1, 2] * X2 + t[1]
    zc = R[2, 0] * X0 + R[2, 1] * X1 + R[2, 2] * X2 + t[2]
    return xc, yc, zc


def _project(cam: Camera, X: np.ndarray, jacobian: bool = False):
    """Pixels (u, v) of world points X (N, 3) with distortion, as two (N,) arrays; with
    ``jacobian=True`` also the six entries ``(Ju0, Ju1, Ju2), (Jv0, Jv1, Jv2)`` of d(u,v)/dX.

    Points on or behind the camera plane give NaN.
    """
    xc, yc, zc = _cam_points(cam, X)
    with np.errstate(divide="ignore", invalid="ignore"):
        iz = 1.0 / np.where(zc > 1e-9, zc, np.nan)
    x, y = xc * iz, yc * iz
    K = cam.K
    if not jacobian:
        xd, yd = cam.distort_components(x, y)
        return K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]
    xd, yd, j00, j01, j10, j11 = cam.distort_components(x, y, jacobian=True)
    u = K[0, 0] * xd + K[0, 1] * yd + K[0, 2]
    v = K[1, 1] * yd + K[1, 2]
    # A = [[fx, s], [0, fy]] @ Jd: derivative of pixels w.r.t. undistorted normalised coords
    a00 = K[0, 0] * j00 + K[0, 1] * j10
    a01 = K[0, 0] * j01 + K[0, 1] * j11
    a10 = K[1, 1] * j10
    a11 = K[1, 1] * j11
    R = cam.R
    Ju, Jv = [], []
    for r0, r1, out in ((a00, a01, Ju), (a10, a11, Jv)):
        # d(x,y)/d(Xc) = [[iz, 0, -x iz], [0, iz, -y iz]], then chain with R (d Xc / d X)
        b0, b1 = r0 * iz, r1 * iz
        b2 = -(r0 * x + r1 * y) * iz
        out.extend(b0 * R[0, k] + b1 * R[1, k] + b2 * R[2, k] for k in range(3))
    return u, v, Ju, Jv


def _view_errors(cameras, X, uv) -> np.ndarray:
    """(C, N) pixel reprojection errors of X in every camera (NaN where unobserved)."""
    out = np.empty((len(cameras), len(X)))
    for c, cam in enumerate(cameras):
        u, v = _project(cam, X)
        out[c] = np.hypot(u - uv[c, :, 0], v - uv[c, :, 1])
    return out


def _uncertainty(cameras, X, use) -> np.ndarray:
    """(N,) first-order 3D standard error per pixel of image noise (metres per px).

    ``sqrt(trace((J^T J)^-1))`` with ``J`` the stacked pixel Jacobians of the used views at ``X``:
    the RMS 3D error that 1 px of isotropic Gaussian noise in each used view produces. Large for
    poor geometry (two views whose rays are nearly parallel, such as facing cameras).
    """
    n = len(X)
    H = {ij: np.zeros(n) for ij in _PAIRS}
    for c, cam in enumerate(cameras):
        _, _, Ju, Jv = _project(cam, X, jacobian=True)
        w = use[c] & np.isfinite(Ju[0]) & np.isfinite(Jv[0])
        Ju = [np.where(w, j, 0.0) for j in Ju]
        Jv = [np.where(w, j, 0.0) for j in Jv]
        for i, j in _PAIRS:
            H[i, j] += Ju[i] * Ju[j] + Jv[i] * Jv[j]
    a, b, c = H[0, 0], H[0, 1], H[0, 2]
    d, e, f = H[1, 1], H[1, 2], H[2, 2]
    det = a * (d * f - e * e) + b * (c * e - b * f) + c * (b * e - c * d)
    trace_inv = (d * f - e * e) + (a * f - c * c) + (a * d - b * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.sqrt(trace_inv / det)
    return np.where(np.isfinite(u) & (det > 0), u, np.inf)


def _refine(cameras, X, uv, w, delta, iterations, tol):
    """Huber-IRLS Gauss-Newton in pixels over views with weight ``w`` (C, N) > 0.

    Only points that still move by more than ``tol`` are iterated further.
    """
    X = X.copy()
    act = np.nonzero(np.isfinite(X).all(-1) & ((w > 0).sum(0) >= 2))[0]
    prev = np.zeros(len(act))  # size of the previous step (0: none yet)
    for _ in range(iterations):
        if act.size == 0:
            break
        Xa = X[act]
        n = len(act)
        H = {ij: np.zeros(n) for ij in _PAIRS}
        g = [np.zeros(n), np.zeros(n), np.zeros(n)]
        for c, cam in enumerate(cameras):
            u, v, Ju, Jv = _project(cam, Xa, jacobian=True)
            ru = u - uv[c, act, 0]
            rv = v - uv[c, act, 1]
            rn = np.sqrt(ru * ru + rv * rv)
            with np.errstate(divide="ignore", invalid="ignore"):
                wc = w[c, act] * np.minimum(1.0, delta / rn)
            ok = (wc > 0) & np.isfinite(rn)  # rn is NaN wherever the Jacobian is
            if not ok.all():  # zero the unused views (NaN * 0 would still be NaN)
                wc = np.where(ok, wc, 0.0)
                ru = np.where(ok, ru, 0.0)
                rv = np.where(ok, rv, 0.0)
                Ju = [np.where(ok, j, 0.0) for j in Ju]
                Jv = [np.where(ok, j, 0.0) for j in Jv]
            wJu = [wc * j for j in Ju]
            wJv = [wc * j for j in Jv]
            for i, j in _PAIRS:
                H[i, j] += wJu[i] * Ju[j] + wJv[i] * Jv[j]
            for i in range(3):
                g[i] += wJu[i] * ru + wJv[i] * rv
        # tiny Levenberg damping keeps near-degenerate (almost parallel rays) systems solvable
        damp = 1e-12 * (H[0, 0] + H[1, 1] + H[2, 2])
        for i in range(3):
            H[i, i] = H[i, i] + damp
        step = _solve3(H, g)
        step = np.where(np.isfinite(step), step, 0.0)
        X[act] = Xa - step
        size = np.abs(step).max(-1)
        # converged when this step, or the next one predicted from the observed (linear) rate of
        # convergence, is below tol; this saves the confirming iteration most points would need
        with np.errstate(divide="ignore", invalid="ignore"):
            nxt = np.where(prev > 0, size * size / prev, np.inf)
        keep = (size > tol) & (nxt > tol)
        act, prev = act[keep], size[keep]
    return X


# ---- robust triangulation -----------------------------------------------------------------------
def _ray_errors(cameras, X, rays, focal) -> np.ndarray:
    """(C, N) approximate pixel errors: distance between the projected and observed undistorted
    normalised coordinates times the focal length (inf behind the camera, NaN if unobserved)."""
    out = np.empty((len(cameras), len(X)))
    for c, cam in enumerate(cameras):
        xc, yc, zc = _cam_points(cam, X)
        with np.errstate(divide="ignore", invalid="ignore"):
            iz = 1.0 / zc
            e = np.hypot(xc * iz - rays[c, :, 0], yc * iz - rays[c, :, 1]) * focal[c]
        out[c] = np.where(zc > 0, e, np.inf)
    return out


def _consistent_views(cameras, rays, use, thr_px, focal):
    """Inlier views (C, N) of the best two-view hypothesis under a truncated (MSAC) cost, and a
    mask (N,) of ambiguous points.

    Errors are measured on undistorted normalised coordinates scaled by each camera's focal
    length (≈ pixels), which is cheap and close enough for an inlier decision. A point is
    ambiguous when the best hypothesis has only two inliers and another hypothesis has at least
    two inliers *none of which* the best one uses: two disjoint pairs of views, each agreeing,
    that disagree with each other (e.g. two good views, and two bad views that happen to satisfy
    the epipolar constraint between them) -- two 3D answers, and nothing in one frame's geometry
    says which one is right. Pairs sharing a view with the best pair are not a second answer:
    with noisy real detections (or one slightly offset camera) views a, b, c often form
    self-consistent pairs {a, b} and {b, c} while {a, c} falls just over the threshold; the
    shared view ties them to the same 3D point, so such points are kept.
    """
    C, N = use.shape
    best_cost = np.full(N, np.inf)
    best_in = use.copy()
    pairs_in = []
    for a, b in combinations(range(C), 2):
        pair = use[a] & use[b]
        if not pair.any():
            continue
        w = np.zeros((C, N))
        w[a] = pair
        w[b] = pair
        e = _ray_errors(cameras, _dlt_normal(cameras, rays, w), rays, focal)
        e = np.where(use, np.nan_to_num(e, nan=np.inf), 0.0)
        inl = use & (e < thr_px) & pair[None]
        cost = np.minimum(e, thr_px).__pow__(2).sum(0)
        better = pair & (cost < best_cost) & (inl.sum(0) >= 2)
        best_cost = np.where(better, cost, best_cost)
        best_in = np.where(better[None], inl, best_in)
        pairs_in.append(inl)
    n_best = best_in.sum(0)
    ambiguous = np.zeros(N, dtype=bool)
    alt_in = np.zeros_like(best_in)
    for inl in pairs_in:
        # another self-consistent hypothesis on views disjoint from the best one's: two 3D answers
        other = (n_best == 2) & (inl.sum(0) >= 2) & ~(inl & best_in).any(0) & ~ambiguous
        alt_in[:, other] = inl[:, other]
        ambiguous |= other
    if ambiguous.any():
        # ... unless one point explains both groups within twice the inlier threshold in every view:
        # a two-view estimate hides any error along the epipolar line in its depth, so with a few px
        # of detector noise two poorly conditioned pairs can "disagree" by tens of px elsewhere while
        # all views see the same point. Then it is one noisy answer, not two.
        idx = np.nonzero(ambiguous)[0]
        union = best_in[:, idx] | alt_in[:, idx]
        X = _dlt_normal(cameras, rays[:, idx], union.astype(float))
        e = np.where(union, np.nan_to_num(_ray_errors(cameras, X, rays[:, idx], focal), nan=np.inf), 0.0)
        one = e.max(0) < 2 * thr_px
        best_in[:, idx[one]] = union[:, one]
        ambiguous[idx[one]] = False
    return best_in, ambiguous


def triangulate(cameras: list[Camera], uv, conf=None,
                options: TriangulationOptions | None = None) -> TriangulationResult:
    """Robust triangulation of 2D observations ``uv`` (C, *S, 2) px with confidences (C, *S).

    See the module docstring for the steps. Points are processed in chunks of
    ``options.chunk`` (cache-sized arrays are faster in numpy) on ``options.workers`` threads
    (numpy releases the GIL in its array loops). Returns a :class:`TriangulationResult` whose
    arrays have the point shape S.
    """
    o = options or TriangulationOptions()
    uv2, conf2, shape = _prepare(cameras, uv, conf)
    C, N = conf2.shape
    X = np.empty((N, 3))
    err = np.empty((C, N))
    use = np.empty((C, N), dtype=bool)
    mean_err = np.empty(N)
    valid = np.empty(N, dtype=bool)

    unc = np.empty(N)

    def work(s):
        sl = slice(s, min(s + o.chunk, N))
        X[sl], err[:, sl], use[:, sl], mean_err[sl], valid[sl], unc[sl] = _triangulate_flat(
            cameras, uv2[:, sl], conf2[:, sl], o)

    starts = range(0, N, max(1, o.chunk))
    workers = o.workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(starts) > 1:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(work, starts))
    else:
        for s in starts:
            work(s)
    return TriangulationResult(
        points=X.reshape(*shape, 3),
        reproj_error=mean_err.reshape(shape),
        view_error=np.moveaxis(err, 0, -1).reshape(*shape, C),
        views_used=np.moveaxis(use, 0, -1).reshape(*shape, C),
        valid=valid.reshape(shape),
        uncertainty_m_per_px=unc.reshape(shape),
    )


def _triangulate_flat(cameras, uv2, conf2, o: TriangulationOptions):
    """:func:`triangulate` on flat arrays (C, N, 2), (C, N): returns X (N, 3), view errors
    (C, N), views used (C, N), mean error (N,), valid (N,)."""
    C, N = conf2.shape
    rays = _rays(cameras, uv2)
    usable = np.isfinite(rays).all(-1) & np.isfinite(conf2) & (conf2 >= o.conf_threshold)
    enough = usable.sum(0) >= 2
    use = usable & enough[None]
    wconf = np.where(use, np.clip(np.nan_to_num(conf2), 1e-6, None), 0.0)
    X = _dlt_normal(cameras, rays, wconf)
    if o.consistency and C > 2:
        # only points whose all-view estimate disagrees with some view need the pair search
        focal = np.array([0.5 * (cam.K[0, 0] + cam.K[1, 1]) for cam in cameras])
        e0 = np.where(use, _ray_errors(cameras, X, rays, focal), 0.0)
        sus = np.nonzero((np.nan_to_num(e0, nan=np.inf) > o.consistency_threshold_px).any(0)
                         & (use.sum(0) > 2))[0]
        if sus.size:
            inl, amb = _consistent_views(cameras, rays[:, sus], use[:, sus], o.consistency_threshold_px, focal)
            if o.reject_ambiguous:
                inl[:, amb] = False
            use[:, sus] = inl
            wconf[:, sus] = np.where(use[:, sus], wconf[:, sus], 0.0)
            X[sus] = _dlt_normal(cameras, rays[:, sus], wconf[:, sus])
    X = _refine(cameras, X, uv2, wconf, o.huber_delta_px, o.iterations, o.tol_m)
    err = _view_errors(cameras, X, uv2)
    # prune the worst view while it exceeds the threshold and more than two views remain
    for _ in range(C - 2):
        e_used = np.where(use, err, -np.inf)
        worst = np.argmax(e_used, axis=0)
        worst_e = e_used[worst, np.arange(N)]
        drop = (worst_e > o.reproj_threshold_px) & (use.sum(0) > 2)
        if not drop.any():
            break
        idx = np.nonzero(drop)[0]
        use[worst[idx], idx] = False
        wsub = np.where(use[:, idx], np.clip(np.nan_to_num(conf2[:, idx]), 1e-6, None), 0.0)
        Xs = _dlt_normal(cameras, rays[:, idx], wsub)
        X[idx] = _refine(cameras, Xs, uv2[:, idx], wsub, o.huber_delta_px, o.iterations, o.tol_m)
        err[:, idx] = _view_errors(cameras, X[idx], uv2[:, idx])
    n_used = use.sum(0)
    with np.errstate(invalid="ignore"):
        mean_err = np.where(n_used > 0, np.where(use, err, 0.0).sum(0) / np.maximum(n_used, 1), np.nan)
    max_err = o.reproj_threshold_px if o.max_error_px is None else o.max_error_px
    valid = (n_used >= 2) & np.isfinite(X).all(-1) & (mean_err <= max_err) & np.isfinite(mean_err)
    unc = np.full(N, np.nan)
    if valid.any():
        idx = np.nonzero(valid)[0]
        unc[idx] = _uncertainty(cameras, X[idx], use[:, idx])
        if o.max_uncertainty_mm_per_px is not None:
            valid[idx] &= unc[idx] * 1000.0 <= o.max_uncertainty_mm_per_px
    X[~valid] = np.nan
    mean_err = np.where(valid, mean_err, np.nan)
    unc = np.where(valid, unc, np.nan)
    return X, err, use & valid[None], mean_err, valid, unc
