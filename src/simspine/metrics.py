"""3D pose metrics shared by the demo, the benchmarks and the tests.

All position inputs are arrays (..., K, 3) in metres; position errors are returned in
millimetres (the unit the literature reports). Missing points (NaN in prediction or ground truth)
are left out of the averages, never counted as zero error.

* :func:`mpjpe` — mean per-joint position error in the given frame (world MPJPE for
  triangulation; pass root-relative arrays for lifting).
* :func:`p_mpjpe` — MPJPE after a per-frame similarity Procrustes alignment (rotation,
  translation and isotropic scale) of the prediction onto the ground truth.
* :func:`per_joint_error`, :func:`per_region` — breakdowns by keypoint and by SpineTrack-37
  region (lumbar / thoracic / cervical, from ``data/spinetrack37.json``).
* :func:`angle_rmse` — root-mean-square difference of angles (degrees), wrap-around aware.
"""

from __future__ import annotations

import numpy as np

from simspine.errors import InputError


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=float)
    gt = np.asarray(gt, dtype=float)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise InputError(None, f"prediction {pred.shape} and ground truth {gt.shape} must both be (..., K, 3)")
    return pred, gt


def per_point_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error (..., K) in millimetres; NaN where either point is missing."""
    pred, gt = _check(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1) * 1000.0


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error (mm) over all finite points of (..., K, 3) arrays in metres."""
    e = per_point_error(pred, gt)
    return float(np.nanmean(e)) if np.isfinite(e).any() else float("nan")


def per_joint_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(K,) mean error per keypoint in mm, averaged over all leading axes (NaN if never seen)."""
    e = per_point_error(pred, gt).reshape(-1, np.shape(pred)[-2])
    with np.errstate(invalid="ignore"):
        n = np.isfinite(e).sum(0)
        return np.where(n > 0, np.nansum(e, 0) / np.maximum(n, 1), np.nan)


def procrustes_align(pred: np.ndarray, gt: np.ndarray, scale: bool = True) -> np.ndarray:
    """Align each frame of ``pred`` (..., K, 3) to ``gt`` by a similarity transform (least squares).

    Umeyama's closed form, batched over the leading axes; points missing in either array are
    excluded from the fit of their frame (frames with fewer than 3 common points come out NaN).
    """
    pred, gt = _check(pred, gt)
    shape = pred.shape
    P = pred.reshape(-1, shape[-2], 3)
    G = gt.reshape(-1, shape[-2], 3)
    w = (np.isfinite(P).all(-1) & np.isfinite(G).all(-1)).astype(float)  # (N, K)
    n = w.sum(1)  # (N,)
    Pz, Gz = np.nan_to_num(P), np.nan_to_num(G)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp = (w[..., None] * Pz).sum(1) / n[:, None]
        mg = (w[..., None] * Gz).sum(1) / n[:, None]
    Pc = (Pz - mp[:, None]) * w[..., None]
    Gc = (Gz - mg[:, None]) * w[..., None]
    ok = n >= 3
    Pc, Gc = np.nan_to_num(Pc), np.nan_to_num(Gc)
    H = np.einsum("nki,nkj->nij", Pc, Gc)  # cross-covariance
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", U, Vt)))
    D = np.ones_like(S)
    D[:, 2] = d  # reflection fix
    R = np.einsum("nji,nj,nkj->nik", Vt, D, U)  # R = V D U^T maps pred onto gt
    if scale:
        var = (Pc**2).sum((1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (S * D).sum(1) / var
    else:
        s = np.ones(len(P))
    out = s[:, None, None] * np.einsum("nij,nkj->nki", R, P - mp[:, None]) + mg[:, None]
    out[~ok] = np.nan
    return out.reshape(shape)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE (mm) after per-frame similarity Procrustes alignment of ``pred`` onto ``gt``."""
    return mpjpe(procrustes_align(pred, gt), gt)


def per_region(pred: np.ndarray, gt: np.ndarray, regions: dict[str, np.ndarray] | None = None,
               aligned: bool = False) -> dict[str, float]:
    """MPJPE (mm) per region of SpineTrack-37 keypoint arrays (..., 37, 3).

    ``regions`` maps a region name to keypoint indices; the default is the paper's lumbar /
    thoracic / cervical split plus ``spine`` (the SpineTrack spine subset) and ``all``. With
    ``aligned=True`` the errors are computed after per-frame Procrustes alignment (P-MPJPE).
    """
    if regions is None:
        from simspine.skeletons import spinetrack37

        sk = spinetrack37()
        regions = {r: sk.subset(r) for r in ("lumbar", "thoracic", "cervical", "spine", "body")}
        regions["all"] = np.arange(len(sk))
    pred, gt = _check(pred, gt)
    if aligned:
        pred = procrustes_align(pred, gt)
    return {name: mpjpe(pred[..., np.asarray(idx), :], gt[..., np.asarray(idx), :]) for name, idx in regions.items()}


def angle_rmse(pred_deg: np.ndarray, gt_deg: np.ndarray, wrap: bool = True, axis=None) -> float | np.ndarray:
    """Root-mean-square angle difference in degrees (NaNs ignored).

    With ``wrap=True`` differences are taken modulo 360 into [-180, 180) so that 179 vs -179
    counts as 2 degrees. ``axis`` reduces over that axis only (e.g. per coordinate).
    """
    a = np.asarray(pred_deg, dtype=float)
    b = np.asarray(gt_deg, dtype=float)
    if a.shape != b.shape:
        raise InputError(None, f"angle arrays differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    if wrap:
        d = (d + 180.0) % 360.0 - 180.0
    with np.errstate(invalid="ignore"):
        r = np.sqrt(np.nanmean(d * d, axis=axis))
    return float(r) if np.ndim(r) == 0 else r
