"""``simspine bench triangulation``: simspine's triangulation next to aniposelib's on the same data.

Data: ``--frames`` frames × 37 keypoints of a synthetic moving point cloud (a body-sized box whose
centre wanders over the Human3.6M capture area), projected into the four Human3.6M cameras of
S9 (their distortion converted to OpenCV's model so that both libraries project exactly the same
way), plus Gaussian pixel noise and outliers (a share of observations moved 50–200 px in a random
direction, as a detector's left/right swap or a jump would).

Methods, each timed on the same 2D arrays (wall clock, warm: aniposelib's JAX functions are
compiled by an untimed call on the full data first):

* simspine DLT (:func:`simspine.multiview.triangulation.triangulate_dlt`) and simspine robust
  (:func:`~simspine.multiview.triangulation.triangulate`, on one thread and on its default
  threads: up to 4, at most the CPU count), all points;
* aniposelib ``CameraGroup.triangulate`` (DLT by SVD, JAX), all points;
* aniposelib ``CameraGroup.triangulate_ransac`` (per-point Python loop over camera subsets):
  too slow for all points, so it runs on a random subset of ``--ransac-points`` points, and
  simspine robust is scored on the same subset for the accuracy comparison.

MPJPE is in millimetres against the true points; points a method leaves NaN are counted in
"missing" and left out of its MPJPE. simspine refuses points it cannot resolve (two
self-consistent view pairs that disagree, or nearly parallel rays), so the headline accuracy
ratio compares both methods on the points simspine kept.
"""

from __future__ import annotations

import time

import numpy as np

from simspine.bench.table import format_table

NAME = "triangulation"
HELP = "robust triangulation vs aniposelib (DLT and RANSAC): points/s and MPJPE"


def add_arguments(p) -> None:
    from simspine.commands._args import fraction, nonneg_float, nonneg_int, positive_int

    p.add_argument("--frames", type=positive_int, default=10000, help="frames (37 keypoints each; default %(default)s)")
    p.add_argument("--noise-px", type=nonneg_float, default=2.0, help="Gaussian pixel noise, std (default %(default)s)")
    p.add_argument("--outliers", type=fraction, default=0.05,
                   help="share of 2D observations moved 50-200 px (default %(default)s)")
    p.add_argument("--ransac-points", type=positive_int, default=500,
                   help="points given to aniposelib's triangulate_ransac (default %(default)s)")
    p.add_argument("--subject", default="S9", help="Human3.6M subject whose cameras are used (default %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0)


def make_data(cameras, frames: int, noise_px: float, outliers: float, seed: int = 0, keypoints: int = 37):
    """Synthetic (X (T, K, 3) metres, uv (C, T, K, 2) pixels, outlier mask (C, T, K))."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 50.0
    centre = np.c_[1.2 * np.sin(0.21 * t + 0.3), 1.2 * np.sin(0.13 * t + 1.0), 0.0 * t]
    offs = np.c_[rng.uniform(-0.3, 0.3, keypoints), rng.uniform(-0.3, 0.3, keypoints), rng.uniform(0.05, 1.8, keypoints)]
    wiggle = 0.05 * np.sin(2 * np.pi * 0.7 * t[:, None, None] + rng.uniform(0, 6.3, (1, keypoints, 3)))
    X = centre[:, None, :] + offs[None] + wiggle
    uv = np.stack([c.project(X) for c in cameras])
    uv = uv + rng.normal(scale=noise_px, size=uv.shape)
    out = rng.random(uv.shape[:-1]) < outliers
    ang = rng.uniform(0, 2 * np.pi, out.sum())
    mag = rng.uniform(50, 200, out.sum())
    uv[out] += mag[:, None] * np.c_[np.cos(ang), np.sin(ang)]
    return X, uv, out


def _mpjpe(P, X):
    e = np.linalg.norm(P - X, axis=-1) * 1000
    return float(np.nanmean(e)), int(np.isnan(e).sum())


def _timed(fn, *a, **kw):
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t0


def run(args) -> int:
    import os
    import warnings

    os.environ.setdefault("ANIPOSE_DISABLE_JAX_X64", "0")
    from simspine.calibration import h36m_cameras, matrix_to_rodrigues
    from simspine.errors import InputError
    from simspine.multiview.triangulation import TriangulationOptions, triangulate, triangulate_dlt

    try:
        from aniposelib.cameras import Camera as ACamera
        from aniposelib.cameras import CameraGroup
    except ImportError as e:  # pragma: no cover - bench extra missing
        raise InputError("aniposelib", f"not installed ({e}); pip install -e '.[bench]'") from None
    if args.frames < 1:
        raise InputError("--frames", "must be at least 1")

    cams = [c.converted("opencv", exact=False) for c in h36m_cameras(args.subject)]
    group = CameraGroup([ACamera(matrix=c.K, dist=c.dist, size=c.size, rvec=matrix_to_rodrigues(c.R), tvec=c.t,
                                 name=c.name) for c in cams])
    workers = min(4, os.cpu_count() or 1)
    X, uv, out = make_data(cams, args.frames, args.noise_px, args.outliers, args.seed)
    C, T, K = uv.shape[:3]
    n = T * K
    flatX = X.reshape(n, 3)
    flat = uv.reshape(C, n, 2)
    print(f"data: {T} frames x {K} keypoints = {n} points, {C} Human3.6M cameras ({args.subject}, OpenCV "
          f"distortion), noise {args.noise_px} px, outliers {out.mean():.1%} of observations "
          f"({(out.any(0)).mean():.1%} of points have one or more)")

    rows = []
    P, dt = _timed(triangulate_dlt, cams, uv)
    rows.append(["simspine DLT", n, dt, n / dt, *_mpjpe(P, X)])
    res, dt = _timed(triangulate, cams, uv, options=TriangulationOptions(workers=1))
    rows.append(["simspine robust, 1 thread", n, dt, n / dt, *_mpjpe(res.points, X)])
    res, dt = _timed(triangulate, cams, uv)
    rows.append([f"simspine robust, {workers} threads", n, dt, n / dt, *_mpjpe(res.points, X)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group.triangulate(flat.copy())  # compile JAX functions (untimed)
        P, dt = _timed(group.triangulate, flat.copy())
    rows.append(["aniposelib triangulate", n, dt, n / dt, *_mpjpe(P, flatX)])
    m = min(args.ransac_points, n)
    sub = np.sort(np.random.default_rng(args.seed + 1).choice(n, m, replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group.triangulate_ransac(flat[:, sub[:2]].copy())  # compile (untimed)
        (P, *_), dt = _timed(group.triangulate_ransac, flat[:, sub].copy())
    rows.append(["aniposelib triangulate_ransac (subset)", m, dt, m / dt, *_mpjpe(P, flatX[sub])])
    ours = res.points.reshape(n, 3)[sub]
    rows.append(["simspine robust (same subset)", m, float("nan"), float("nan"), *_mpjpe(ours, flatX[sub])])
    kept = np.isfinite(ours).all(-1)
    rows.append(["aniposelib RANSAC on points simspine kept", int(kept.sum()), float("nan"), float("nan"),
                 *_mpjpe(P[kept], flatX[sub][kept])])

    base_rate = rows[3][3]
    ransac_err = rows[4][4]
    table = []
    for name, npts, dt, rate, err, miss in rows:
        table.append([name, npts, dt, rate, rate / base_rate, err, err / ransac_err, miss])
    print(format_table(["method", "points", "time s", "points/s", "speed vs anipose DLT", "MPJPE mm",
                        "MPJPE vs anipose RANSAC", "missing"], table))
    args.figures = {"headers": ["method", "points", "time s", "points/s", "speed vs anipose DLT", "MPJPE mm",
                                "MPJPE vs anipose RANSAC", "missing"], "rows": table}  # --json (commands.bench)
    sp = rows[2][3] / base_rate
    acc = rows[5][4] / rows[6][4]  # same points: those simspine kept
    print(f"\nsimspine robust ({workers} threads): {sp:.2f}x aniposelib DLT speed (1 thread: "
          f"{rows[1][3] / base_rate:.2f}x), {rows[2][3] / rows[4][3]:.0f}x aniposelib RANSAC "
          f"speed; MPJPE {acc:.2f}x aniposelib RANSAC's on the same points (those simspine kept; it refuses "
          f"{int(rows[2][5])} of {n} as ambiguous or badly conditioned) "
          f"(target: speed >= 1x DLT, MPJPE <= 1x RANSAC: {'met' if sp >= 1 and acc <= 1 else 'NOT met'})")
    return 0
