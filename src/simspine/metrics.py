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
* :func:`root_relative`, :func:`root_relative_mpjpe` — poses with the root keypoint (SpineTrack-37
  ``Hip``, the sacrum, id 19) moved to the origin; the lifting benchmarks' MPJPE.
* :func:`n_mpjpe` — MPJPE after a per-frame least-squares scale of the prediction (no rotation,
  no translation; Rhodin et al. 2018), :func:`velocity_error` — mean error of the per-frame
  velocities (first differences over time; Pavllo et al. 2019's MPJVE), mm per frame.
* :func:`regions`, :func:`breakdown` — the region index sets and per-action × per-region tables of
  MPJPE / P-MPJPE / root-relative MPJPE / N-MPJPE, with the mean over actions.
* 2D: :func:`pck`, :func:`pck_auc` — share of keypoints whose distance, divided by the shorter side of
  the person box, is within a threshold, and its area under the curve over thresholds;
  :func:`coco_oks` — COCO keypoint AP / AP50 / AP75 / AR with the SpineTrack-37 OKS sigmas for the
  ``body`` (ids 0-16) and ``spine`` (36, 35, 18, 30, 29, 28, 27, 26, 19) subsets, computed by
  pycocotools' ``COCOeval`` (never re-implemented here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from simspine.errors import InputError

#: SpineTrack-37 root keypoint (``Hip``, the sacrum; the only keypoint whose parent is -1).
ROOT = 19


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


# ---- 3D: root-relative, scale-only, velocity ---------------------------------------------------
def root_relative(x: np.ndarray, root: int | Sequence[int] = ROOT) -> np.ndarray:
    """``x`` (..., K, D) minus its root keypoint (or the mean of several root keypoints)."""
    x = np.asarray(x, dtype=float)
    r = np.atleast_1d(np.asarray(root, dtype=int))
    return x - x[..., r, :].mean(-2, keepdims=True)


def root_relative_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | Sequence[int] = ROOT) -> float:
    """MPJPE (mm) after moving each frame's root keypoint to the origin in both arrays."""
    pred, gt = _check(pred, gt)
    return mpjpe(root_relative(pred, root), root_relative(gt, root))


def scale_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (..., K, 3) times the per-frame scale ``s = <p, g> / <p, p>`` that minimises
    ``|s p - g|`` over the frame's finite points (no rotation, no translation: pass root-relative
    poses); frames without finite points come out NaN."""
    pred, gt = _check(pred, gt)
    ok = np.isfinite(pred).all(-1) & np.isfinite(gt).all(-1)
    P = np.where(ok[..., None], pred, 0.0)
    G = np.where(ok[..., None], gt, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (P * G).sum((-1, -2)) / (P * P).sum((-1, -2))
    return s[..., None, None] * pred


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | Sequence[int] | None = ROOT) -> float:
    """N-MPJPE (mm): MPJPE after per-frame scale-only alignment of the root-relative prediction
    (``root=None``: the arrays are taken as they are, already root-relative)."""
    pred, gt = _check(pred, gt)
    if root is not None:
        pred, gt = root_relative(pred, root), root_relative(gt, root)
    return mpjpe(scale_align(pred, gt), gt)


def velocity_error(pred: np.ndarray, gt: np.ndarray, axis: int = 0) -> float:
    """Mean per-joint velocity error (mm per frame): MPJPE of the first differences along the time
    ``axis`` of (T, ..., K, 3) arrays. A constant offset gives 0."""
    pred, gt = _check(pred, gt)
    if pred.shape[axis] < 2:
        return float("nan")
    return mpjpe(np.diff(pred, axis=axis), np.diff(gt, axis=axis))


# ---- breakdowns per region and per action ------------------------------------------------------
def regions(names: Iterable[str] = ("lumbar", "thoracic", "cervical", "spine", "body", "all")) -> dict[str, np.ndarray]:
    """SpineTrack-37 index sets for the region breakdowns.

    ``lumbar``/``thoracic``/``cervical``: ``regions_for_3d_metrics`` of ``data/spinetrack37.json``;
    ``spine``: the 15 spine-centric keypoints (``spine15_simspine``: the lifting benchmarks' spine set,
    the three regions together); ``body``: COCO's 17 (ids 0-16); ``all``: the 37.
    """
    from simspine.skeletons import spinetrack37

    sk = spinetrack37()
    out = {}
    for n in names:
        if n == "all":
            out[n] = np.arange(len(sk))
        elif n == "spine":
            out[n] = sk.subset("spine15_simspine")
        else:
            out[n] = sk.subset(n)
    return out


#: metrics of :func:`point_errors` / :func:`breakdown`
METRICS = ("mpjpe", "p_mpjpe", "rr_mpjpe", "n_mpjpe")


def point_errors(pred: np.ndarray, gt: np.ndarray, metric: str = "mpjpe", root: int = ROOT) -> np.ndarray:
    """Per-point errors (..., K) in mm for ``metric``: ``mpjpe`` (as given), ``p_mpjpe`` (per-frame
    similarity Procrustes over all K points), ``rr_mpjpe`` (root-relative), ``n_mpjpe`` (root-relative,
    per-frame scale). The alignment uses every keypoint given; regions are picked afterwards."""
    pred, gt = _check(pred, gt)
    if metric == "mpjpe":
        return per_point_error(pred, gt)
    if metric == "p_mpjpe":
        return per_point_error(procrustes_align(pred, gt), gt)
    if metric == "rr_mpjpe":
        return per_point_error(root_relative(pred, root), root_relative(gt, root))
    if metric == "n_mpjpe":
        p, g = root_relative(pred, root), root_relative(gt, root)
        return per_point_error(scale_align(p, g), g)
    raise InputError(None, f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")


def _nanmean(e: np.ndarray) -> float:
    return float(np.nanmean(e)) if np.isfinite(e).any() else float("nan")


def breakdown(items: Iterable[tuple[str, np.ndarray, np.ndarray]], metric: str = "mpjpe",
              region_sets: dict[str, np.ndarray] | None = None, keypoints: Sequence[int] | None = None,
              root: int = ROOT) -> dict[str, dict[str, float]]:
    """Per-action × per-region table of ``metric`` (see :func:`point_errors`), in mm.

    ``items``: ``(action, pred, gt)`` with (T, K, 3) arrays (several items may share an action:
    their frames are pooled). ``keypoints``: the SpineTrack-37 ids of the K columns (default: all 37,
    K = 37); a region keeps the ids present. Returns ``{action: {region: mm}}`` in the order first seen,
    plus ``"Mean"``: the mean over actions of each region (the papers' average row).
    """
    region_sets = regions() if region_sets is None else region_sets
    pooled: dict[str, list[np.ndarray]] = {}
    K = None
    for action, pred, gt in items:
        e = point_errors(pred, gt, metric, root)
        K = e.shape[-1]
        pooled.setdefault(action, []).append(e.reshape(-1, K))
    ids = np.arange(K or 37) if keypoints is None else np.asarray(keypoints, dtype=int)
    cols = {name: np.flatnonzero(np.isin(ids, idx)) for name, idx in region_sets.items()}
    table = {}
    for action, es in pooled.items():
        e = np.concatenate(es)
        table[action] = {name: (_nanmean(e[:, c]) if len(c) else float("nan")) for name, c in cols.items()}
    if table:
        table["Mean"] = {name: float(np.nanmean([table[a][name] for a in pooled]))
                         if any(np.isfinite(table[a][name]) for a in pooled) else float("nan")
                         for name in cols}
    return table


# ---- 2D: PCK and its AUC ------------------------------------------------------------------------
def normalized_distance_2d(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distances (..., K) between (..., K, 2+) predictions and ground truth in pixels, divided by the
    shorter side of the person box (..., 4) ``x, y, w, h``. Only u, v are used."""
    pred = np.asarray(pred, dtype=float)[..., :2]
    gt = np.asarray(gt, dtype=float)[..., :2]
    boxes = np.asarray(boxes, dtype=float)
    if pred.shape != gt.shape or boxes.shape[-1] != 4 or boxes.shape[:-1] != gt.shape[:-2]:
        raise InputError(None, f"2D prediction {pred.shape}, ground truth {gt.shape} and boxes {boxes.shape} "
                               "must be (..., K, 2), (..., K, 2) and (..., 4)")
    side = np.minimum(boxes[..., 2], boxes[..., 3])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(pred - gt, axis=-1) / np.where(side > 0, side, np.nan)[..., None]


def pck(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, thresholds=0.2, visible: np.ndarray | None = None):
    """PCK: the share of visible ground-truth keypoints whose :func:`normalized_distance_2d` is at
    most each threshold. A missing (NaN) prediction of a visible keypoint counts as wrong.

    ``visible`` (..., K) bool (default: every finite ground-truth point). Returns a float for a
    scalar threshold, else an array over the thresholds.
    """
    d = normalized_distance_2d(pred, gt, boxes)
    gt2 = np.asarray(gt, dtype=float)[..., :2]
    vis = np.isfinite(gt2).all(-1) if visible is None else np.asarray(visible, dtype=bool) & np.isfinite(gt2).all(-1)
    vis &= np.isfinite(np.min(np.asarray(boxes, dtype=float)[..., 2:], -1))[..., None]
    dv = np.where(np.isfinite(d[vis]), d[vis], np.inf)
    th = np.asarray(thresholds, dtype=float)
    if dv.size == 0:
        out = np.full(th.shape, np.nan)
    else:
        out = (dv[None, :] <= th.reshape(-1, 1)).mean(1).reshape(th.shape)
    return float(out) if out.ndim == 0 else out


#: PCK-AUC thresholds: 0 to 0.5 of the box's shorter side in steps of 0.01 (51 values).
AUC_THRESHOLDS = np.linspace(0.0, 0.5, 51)


def pck_auc(pred: np.ndarray, gt: np.ndarray, boxes: np.ndarray, thresholds=AUC_THRESHOLDS,
            visible: np.ndarray | None = None) -> float:
    """Area under the PCK curve over ``thresholds`` (trapezoid rule), divided by the threshold range,
    so 1 is perfect and 0 means no keypoint within the largest threshold."""
    th = np.asarray(thresholds, dtype=float)
    if th.ndim != 1 or th.size < 2 or np.any(np.diff(th) <= 0):
        raise InputError(None, "PCK-AUC needs at least 2 increasing thresholds")
    p = pck(pred, gt, boxes, th, visible)
    return float(np.sum((p[1:] + p[:-1]) / 2 * np.diff(th)) / (th[-1] - th[0]))


# ---- 2D: COCO keypoint AP / AR ------------------------------------------------------------------
def oks_subset(name: str) -> np.ndarray:
    """SpineTrack-37 ids of an OKS subset: ``body`` (0-16), ``spine`` (36, 35, 18, 30, 29, 28, 27,
    26, 19) or ``all``."""
    from simspine.skeletons import spinetrack37

    return spinetrack37().subset(name)


def coco_oks(gt: np.ndarray, boxes: np.ndarray, pred: np.ndarray, scores: np.ndarray | None = None,
             subset: str | Sequence[int] = "spine", image_ids: np.ndarray | None = None,
             sigmas: Sequence[float] | None = None) -> dict[str, float]:
    """COCO keypoint AP, AP50, AP75 and AR of predictions for one subset of SpineTrack-37.

    Args:
        gt: (N, 37, 3) ground truth u, v, visibility (> 0: labelled) in pixels, one person per row.
        boxes: (N, 4) ground-truth person boxes x, y, w, h; the OKS scale is their area w × h
            (as the COCO export writes ``area``).
        pred: (M, 37, 2+) predicted u, v (a third column is ignored); NaN points are placed at
            (0, 0), i.e. counted as far off.
        scores: (M,) detection scores (default 1).
        subset: ``body``, ``spine``, ``all`` or SpineTrack-37 ids.
        image_ids: (M,) row of ``gt`` (= image) each prediction belongs to (default: ``arange(N)``,
            one prediction per ground-truth person).
        sigmas: per-keypoint OKS sigmas of the 37 (default: SpineTrack-37's).

    Evaluation by pycocotools' ``COCOeval`` (iouType ``keypoints``, ``params.kpt_oks_sigmas`` set to
    the subset's sigmas). pycocotools, because it is the COCO authors' maintained reference
    implementation whose numbers papers report; it is already pinned for the dataset's COCO
    export, and its keypoint evaluation takes custom sigmas through ``params.kpt_oks_sigmas``, which
    is all SpineTrack-37 needs (xtcocotools would add a second evaluator and faster-coco-eval a
    C++ build for the same numbers).
    """
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from simspine.skeletons import spinetrack37

    sk = spinetrack37()
    ids = oks_subset(subset) if isinstance(subset, str) else np.asarray(subset, dtype=int)
    sig = np.asarray(sk.oks_sigmas if sigmas is None else sigmas, dtype=float)[ids]
    gt = np.asarray(gt, dtype=float)
    pred = np.asarray(pred, dtype=float)
    boxes = np.asarray(boxes, dtype=float)
    if gt.ndim != 3 or gt.shape[-1] < 3 or boxes.shape != (len(gt), 4) or pred.ndim != 3 or pred.shape[1] != gt.shape[1]:
        raise InputError(None, f"COCO OKS needs gt (N, K, 3), boxes (N, 4), pred (M, K, 2): got {gt.shape}, "
                               f"{boxes.shape}, {pred.shape}")
    M = len(pred)
    scores = np.ones(M) if scores is None else np.asarray(scores, dtype=float)
    image_ids = np.arange(M) if image_ids is None else np.asarray(image_ids, dtype=int)
    if len(scores) != M or len(image_ids) != M:
        raise InputError(None, "scores and image_ids need one value per prediction")
    images, anns = [], []
    for i in range(len(gt)):
        v = gt[i, ids, 2] > 0
        kp = np.zeros((len(ids), 3))
        kp[v, :2] = gt[i, ids][v, :2]
        kp[v, 2] = 2
        b = boxes[i]
        images.append({"id": i + 1})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": [float(x) for x in b],
                     "area": float(b[2] * b[3]), "keypoints": [float(x) for x in kp.ravel()],
                     "num_keypoints": int(v.sum())})
    dets = []
    for j in range(M):
        kp = np.ones((len(ids), 3))
        kp[:, :2] = np.nan_to_num(pred[j, ids, :2], nan=0.0)
        dets.append({"image_id": int(image_ids[j]) + 1, "category_id": 1, "keypoints": [float(x) for x in kp.ravel()],
                     "score": float(scores[j])})
    cat = {"id": 1, "name": "person", "keypoints": [sk.names[i] for i in ids], "skeleton": []}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": [cat]}
        coco_gt.createIndex()
        if not dets:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = sig
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    st = ev.stats
    return {"AP": float(st[0]), "AP50": float(st[1]), "AP75": float(st[2]), "AR": float(st[5])}
