"""Which detected person is the subject: person association across cameras and over time.

A 2D detector reports every person it sees, in an order of its own that changes from frame to
frame. Keeping the most confident person per file (what a single-person reader does) hands the
subject's place to any bystander that the detector happens to see more clearly. This module picks,
per camera and frame, the candidate whose keypoints

1. agree with the other cameras: two views of the same person have viewing rays that (nearly)
   meet, keypoint by keypoint. As Pose2Sim's multi-person affinity does, the agreement of two
   candidates in two cameras is the distance between their rays in metres (the line-to-line
   distance; scale-free, no image-size dependent threshold), summarised over keypoints by a
   confidence-weighted median (robust to the outliers, swaps and occlusion guesses a detector
   makes). Agreement of two views alone is ambiguous (a point anywhere on the epipolar plane
   agrees, and with cameras at shoulder height a bystander beside the subject is nearly on it),
   so a view joins a group only when it agrees with *both* views that started the group, and
   groups seen by more views win;
2. agree with the tracked subject's previous frames: among the groups, the subject's is the one
   whose triangulated keypoints are nearest (median distance, metres) to the subject's last
   position, within a radius that grows with the time the subject has been unseen.

Pose2Sim's single-person association triangulates one keypoint for every combination of people
(a product over cameras, exponential in the number of cameras) and keeps the smallest
reprojection error, frame by frame, with no memory: with two people in every view it may switch
between them. Here candidate groups start from agreeing view pairs (C² P² of them at most), the
whole skeleton is used, and the subject is followed through time.

Which subject (``person``): in the first frame where at least ``person + 1`` people are seen by
two or more cameras each, the people are ordered by the distance of their median keypoint to
the centre of the capture volume (the point nearest all optical axes, where a rig is aimed), and
the ``person``-th (0: the most central) is followed forwards and backwards from that frame.

A camera with no agreeing candidate in a frame gets none (index -1, NaN keypoints, confidence 0):
a missing view is harmless to triangulation, a wrong person is not. The subject seen by fewer
than two cameras cannot be checked and is missing in that frame.

Everything is computed on arrays: world rays for all candidates at once, ray distances for all
camera pairs and candidate pairs of a chunk of frames at once; only the small per-frame grouping
and the tracking loop run in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simspine.cameras import Camera
from simspine.errors import InputError


@dataclass(frozen=True)
class AssociationOptions:
    """Thresholds of :func:`associate`.

    Attributes:
        conf_threshold: keypoints below this confidence are not used to associate (Pose2Sim's
            ``likelihood_threshold_association``, 0.3).
        agreement_m: two candidates agree when the weighted median distance between their
            keypoints' rays is below this (metres; Pose2Sim's multi-person
            ``reconstruction_error_threshold`` is 0.1 m).
        min_common: keypoints both candidates must hold to be compared.
        jump_m: median keypoint displacement allowed between consecutive frames (metres).
        speed_mps: the allowed displacement grows by this per second the subject is unseen.
    """

    conf_threshold: float = 0.3
    agreement_m: float = 0.1
    min_common: int = 4
    jump_m: float = 0.3
    speed_mps: float = 2.0

    def __post_init__(self):
        for name in ("agreement_m", "jump_m"):
            if not getattr(self, name) > 0:
                raise InputError(None, f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.conf_threshold < 1:
            raise InputError(None, f"conf_threshold must be in [0, 1), got {self.conf_threshold}")
        if self.min_common < 1:
            raise InputError(None, f"min_common must be >= 1, got {self.min_common}")
        if not self.speed_mps >= 0:
            raise InputError(None, f"speed_mps must be >= 0, got {self.speed_mps}")


@dataclass
class Association:
    """The tracked subject's detections.

    Attributes:
        keypoints: (C, T, K, 2) pixels of the chosen candidate; NaN where none was chosen.
        conf: (C, T, K) its confidences; 0 where none was chosen.
        chosen: (C, T) index of the chosen candidate per camera and frame; -1 for none.
        start_frame: the frame where the subject was identified (-1: never).
        people_at_start: how many people were seen by two or more cameras in that frame.
    """

    keypoints: np.ndarray
    conf: np.ndarray
    chosen: np.ndarray
    start_frame: int
    people_at_start: int

    def summary(self, n_candidates: np.ndarray | None = None) -> dict:
        """JSON-friendly counts: frames with the subject, views chosen per index, and (given
        ``n_candidates`` (C, T)) frames with several candidates."""
        C, T = self.chosen.shape
        out = {"start_frame": int(self.start_frame), "people_at_start": int(self.people_at_start),
               "frames_with_subject": int((self.chosen >= 0).any(0).sum()),
               "views_chosen": int((self.chosen >= 0).sum()), "views_total": int(C * T)}
        vals, counts = np.unique(self.chosen[self.chosen >= 0], return_counts=True)
        out["chosen_index_counts"] = {str(int(v)): int(n) for v, n in zip(vals, counts, strict=True)}
        if n_candidates is not None:
            n_candidates = np.asarray(n_candidates)
            out["frames_with_several_people"] = int((n_candidates > 1).any(0).sum())
            out["views_without_subject"] = int(((self.chosen < 0) & (n_candidates > 0)).sum())
        return out


# ---- geometry ---------------------------------------------------------------------------------
def capture_centre(cameras: list[Camera]) -> np.ndarray:
    """(3,) the point closest, in least squares, to all optical axes (world, metres)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        d = cam.R[2]  # optical axis in world coordinates
        M = np.eye(3) - np.outer(d, d)
        A += M
        b += M @ cam.center
    return np.linalg.lstsq(A, b, rcond=None)[0]


def world_rays(cameras: list[Camera], uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viewing rays of pixels ``uv`` (C, ..., 2): origins (C, 3) and unit directions (C, ..., 3) in
    the world frame (lens distortion removed); NaN where ``uv`` is NaN."""
    uv = np.asarray(uv, dtype=float)
    origins = np.stack([cam.center for cam in cameras])
    dirs = np.empty((*uv.shape[:-1], 3))
    for c, cam in enumerate(cameras):
        xy = cam.pixel_rays(uv[c])
        v = np.concatenate([xy, np.ones((*xy.shape[:-1], 1))], axis=-1)
        d = v @ cam.R  # R^T v: camera -> world direction
        dirs[c] = d / np.linalg.norm(d, axis=-1, keepdims=True)
    return origins, dirs


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of ``values`` along the last axis with non-negative ``weights`` (NaN values and zero
    weights ignored); NaN where no weight is left."""
    w = np.where(np.isfinite(values), weights, 0.0)
    v = np.where(w > 0, values, np.inf)
    order = np.argsort(v, axis=-1)
    v = np.take_along_axis(v, order, -1)
    cw = np.cumsum(np.take_along_axis(w, order, -1), axis=-1)
    total = cw[..., -1:]
    idx = np.argmax(cw >= 0.5 * total, axis=-1)[..., None]
    out = np.take_along_axis(v, idx, -1)[..., 0]
    return np.where(total[..., 0] > 0, out, np.nan)


def pair_agreement(origins: np.ndarray, dirs: np.ndarray, weight: np.ndarray, min_common: int = 4,
                   chunk: int = 256) -> np.ndarray:
    """Ray distance between every two candidates of every two cameras.

    Args:
        origins: (C, 3) camera centres.
        dirs: (C, T, P, K, 3) unit ray directions (NaN where missing).
        weight: (C, T, P, K) keypoint weights (0 = not used).
        min_common: keypoints with weight in both candidates needed for a value.
    Returns:
        (C, C, T, P, P): the weighted median over keypoints of the distance (m) between the two
        candidates' rays (weights: the smaller of the two); NaN on the camera diagonal, for
        missing candidates and with fewer than ``min_common`` common keypoints. Symmetric.
    """
    C, T, P, K, _ = dirs.shape
    D = np.full((C, C, T, P, P), np.nan)
    for a in range(C):
        for b in range(a + 1, C):
            base = origins[b] - origins[a]
            for s in range(0, T, chunk):  # bounded memory: (chunk, P, P, K, 3)
                da = dirs[a, s:s + chunk, :, None]
                db = dirs[b, s:s + chunk, None, :]
                n = np.cross(da, db)
                nn = np.linalg.norm(n, axis=-1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    dist = np.abs(n @ base) / nn
                    # (nearly) parallel rays: distance from b's centre to a's ray
                    par = np.linalg.norm(np.cross(np.broadcast_to(base, da.shape), da), axis=-1)
                dist = np.where(nn > 1e-9, dist, par)
                w = np.minimum(weight[a, s:s + chunk, :, None], weight[b, s:s + chunk, None, :])
                w = np.where(np.isfinite(dist), w, 0.0)
                med = weighted_median(dist, w)
                med[(w > 0).sum(-1) < min_common] = np.nan
                D[a, b, s:s + chunk] = med
                D[b, a, s:s + chunk] = np.swapaxes(med, -1, -2)
    return D


def triangulate_midpoint(origins: np.ndarray, dirs: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted least-squares point nearest to the rays: origins (C, 3), dirs (C, ..., 3), weights
    (C, ...) -> (..., 3); NaN where fewer than two views have weight."""
    w = np.where(np.isfinite(dirs).all(-1), weight, 0.0)
    d = np.nan_to_num(dirs)
    # sum_c w (I - d d^T) X = sum_c w (I - d d^T) o, accumulated without (C, ..., 3, 3) temporaries
    ob = origins.reshape(origins.shape[0], *([1] * (dirs.ndim - 2)), 3)
    A = -np.einsum("c...,c...i,c...j->...ij", w, d, d)
    sw = w.sum(0)
    for i in range(3):
        A[..., i, i] += sw
    b = np.einsum("c...,c...i->...i", w, np.broadcast_to(ob, d.shape)) \
        - np.einsum("c...,c...i->...i", w * (d * ob).sum(-1), d)
    ok = (w > 0).sum(0) >= 2
    A[~ok] = np.eye(3)
    X = np.linalg.solve(A, b[..., None])[..., 0]
    X[~ok] = np.nan
    return X


# ---- per-frame candidate groups ----------------------------------------------------------------
def point_ray_distance(origins: np.ndarray, dirs: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Distance (m) of points X (..., K, 3) to rays of origin ``origins`` (..., 3) and unit
    direction ``dirs`` (..., K, 3); shapes broadcast."""
    return np.linalg.norm(np.cross(X - origins[..., None, :], dirs), axis=-1)


def candidate_groups(D: np.ndarray, origins: np.ndarray, dirs: np.ndarray, weight: np.ndarray,
                     threshold: float, min_common: int = 4, budget: float = 2e6):
    """Candidate groups (one person's views) of every frame.

    Args:
        D: (C, C, T, P, P) pair agreements (:func:`pair_agreement`).
        origins, dirs, weight: (C, 3), (C, T, P, K, 3), (C, T, P, K) rays and keypoint weights.
        threshold: agreement threshold (m).
    Every agreeing pair of candidates in two cameras starts a group and is triangulated; every
    other camera adds its candidate whose rays pass nearest that skeleton (weighted median
    point-to-ray distance below ``threshold``), or none. A triangulated point has no epipolar
    freedom left, so this rejects the bystanders that two-view agreement lets through.
    All starters of a chunk of frames are handled at once (one array per step, no per-frame loop);
    chunks hold about ``budget`` starter keypoint-candidates, bounding memory in crowded scenes.
    Returns:
        ``(frame (G,), groups (G, C), score (G,), points (G, K, 3))``: the distinct groups with their
        frame, candidate index per camera (-1: no view), mean disagreement (point-to-ray, m) and
        midpoint-triangulated keypoints; ordered by frame, then views (most first), then score.
    """
    C, _, T, P, _ = D.shape
    K = dirs.shape[3]
    out = ([], [], [], [])
    upper = np.triu(np.ones((C, C), bool), 1)[:, :, None, None, None]
    with np.errstate(invalid="ignore"):
        per_frame = ((D < threshold) & upper).sum((0, 1, 3, 4))  # starters per frame
    per_chunk = max(1, int(budget // (P * K)))
    cut = np.searchsorted(np.cumsum(per_frame), np.arange(per_chunk, per_frame.sum() + per_chunk, per_chunk))
    edges = np.unique(np.concatenate([[0], np.minimum(cut + 1, T), [T]]))
    for s0, s1 in zip(edges[:-1], edges[1:], strict=True):
        Dc = D[:, :, s0:s1]
        with np.errstate(invalid="ignore"):
            a, b, t, pa, pb = np.nonzero(Dc < threshold)
        keep = a < b
        a, b, t, pa, pb = a[keep], b[keep], t[keep] + s0, pa[keep], pb[keep]
        H = a.size
        if H == 0:
            continue
        starters = np.full((H, C), -1)
        starters[np.arange(H), a] = pa
        starters[np.arange(H), b] = pb
        X = _group_points(t, starters, origins, dirs, weight)  # (H, K, 3)
        groups = starters.copy()
        for c in range(C):
            dist = point_ray_distance(origins[c], dirs[c, t], X[:, None])  # (H, P, K)
            w = np.where(np.isfinite(dist), weight[c, t], 0.0)
            med = weighted_median(dist, w)
            med[(w > 0).sum(-1) < min_common] = np.nan
            med = np.where(med < threshold, med, np.inf)
            best = np.argmin(med, axis=1)
            add = np.isfinite(med[np.arange(H), best]) & (starters[:, c] < 0)
            groups[add, c] = best[add]
        rows = np.unique(np.concatenate([t[:, None], groups], axis=1), axis=0)
        t, groups = rows[:, 0], rows[:, 1:]
        Xg = _group_points(t, groups, origins, dirs, weight)  # (G, K, 3)
        sel = np.clip(groups, 0, None)
        score = np.zeros(len(groups))
        for c in range(C):  # disagreement: each view against the group's skeleton
            d = point_ray_distance(origins[c], dirs[c, t, sel[:, c]], Xg)  # (G, K)
            w = np.where(np.isfinite(d), weight[c, t, sel[:, c]], 0.0)
            score += np.where(groups[:, c] >= 0, np.nan_to_num(weighted_median(d, w), nan=threshold), 0.0)
        nviews = (groups >= 0).sum(1)
        score /= nviews
        order = np.lexsort((score, -nviews, t))
        for lst, arr in zip(out, (t, groups, score, Xg), strict=True):
            lst.append(arr[order])
    if not out[0]:
        return np.zeros(0, int), np.zeros((0, C), int), np.zeros(0), np.zeros((0, K, 3))
    return tuple(np.concatenate(lst) for lst in out)


def _group_points(t, groups, origins, dirs, weight) -> np.ndarray:
    """(G, K, 3) midpoint triangulation of each group's views (groups (G, C) in frames t (G,))."""
    G, C = groups.shape
    sel = np.clip(groups, 0, None)
    ci = np.arange(C)[:, None]
    d = dirs[ci, t[None], sel.T]  # (C, G, K, 3)
    w = weight[ci, t[None], sel.T] * (groups.T >= 0)[..., None]
    return triangulate_midpoint(origins, d, w)


def _disjoint(groups: np.ndarray) -> list[int]:
    """Greedy: the best groups (already ordered) that share no candidate."""
    taken = []
    for g in range(len(groups)):
        row = groups[g]
        clash = False
        for t in taken:
            if np.any((row >= 0) & (row == groups[t])):
                clash = True
                break
        if not clash:
            taken.append(g)
    return taken


def _median_distance(X: np.ndarray, Y: np.ndarray, min_common: int) -> np.ndarray:
    """Median keypoint distance between each of X (G, K, 3) and Y (K, 3); inf with too few in common."""
    d = np.linalg.norm(X - Y[None], axis=-1)
    n = np.isfinite(d).sum(-1)
    med = weighted_median(d, np.ones_like(d))
    return np.where(n >= min_common, med, np.inf)


# ---- the whole sequence -------------------------------------------------------------------------
def associate(cameras: list[Camera], uv: np.ndarray, conf: np.ndarray, person: int = 0, fps: float = 30.0,
              options: AssociationOptions | None = None) -> Association:
    """Pick the tracked subject's candidate per camera and frame.

    Args:
        cameras: C calibrated cameras.
        uv: (C, T, P, K, 2) pixels of up to P candidates per camera and frame (NaN padding).
        conf: (C, T, P, K) confidences (0 padding).
        person: which subject (0: the most central person where the first is seen; see the
            module docstring for the order).
        fps: frame rate (Hz), for the search radius of a subject unseen for several frames.
        options: thresholds (:class:`AssociationOptions`).
    Returns:
        :class:`Association` (chosen keypoints (C, T, K, 2), confidences, indices (C, T)).
    Raises:
        InputError: bad shapes, ``person`` < 0, or no frame with ``person + 1`` people seen by
            two or more cameras.
    """
    o = options or AssociationOptions()
    uv = np.asarray(uv, dtype=float)
    conf = np.asarray(conf, dtype=float)
    C = len(cameras)
    if uv.ndim != 5 or uv.shape[0] != C or uv.shape[-1] != 2 or conf.shape != uv.shape[:-1]:
        raise InputError(None, f"candidates must be (C={C}, T, P, K, 2) with confidences (C, T, P, K); "
                               f"got {uv.shape} and {conf.shape}")
    if person < 0:
        raise InputError(None, f"person must be >= 0, got {person}")
    if not fps > 0:
        raise InputError(None, f"fps must be > 0, got {fps}")
    _, T, P, K, _ = uv.shape
    weight = np.where(np.isfinite(uv).all(-1) & (conf >= o.conf_threshold), conf, 0.0)
    origins, dirs = world_rays(cameras, uv)
    D = pair_agreement(origins, dirs, weight, o.min_common)  # (C, C, T, P, P)

    frame, groups, _, points = candidate_groups(D, origins, dirs, weight, o.agreement_m, o.min_common)
    bounds = np.searchsorted(frame, np.arange(T + 1))
    groups_t = [groups[bounds[t]:bounds[t + 1]] for t in range(T)]
    points_t = [points[bounds[t]:bounds[t + 1]] for t in range(T)]

    # identify the subject: first frame with person + 1 disjoint groups, ordered by centrality
    centre = capture_centre(cameras)
    start, people_at_start, choice = -1, 0, None
    for t in range(T):
        people = _disjoint(groups_t[t])
        if len(people) > person:
            with np.errstate(all="ignore"):
                where = np.array([np.nanmedian(points_t[t][g], axis=0) for g in people])
            dist = np.linalg.norm(where - centre, axis=-1)
            dist = np.where(np.isfinite(dist), dist, np.inf)
            order = np.argsort(dist, kind="stable")
            start, people_at_start, choice = t, len(people), people[order[person]]
            break
    if choice is None:
        most = max((len(_disjoint(g)) for g in groups_t), default=0)
        raise InputError(None, f"person {person} asked for, but at most {most} people are seen by two or "
                               "more cameras in any frame")

    chosen = np.full((C, T), -1)
    chosen[:, start] = groups_t[start][choice]

    def follow(frames, X_prev):
        age = 1
        for t in frames:
            g, X = groups_t[t], points_t[t]
            if len(g):
                radius = o.jump_m + o.speed_mps * (age - 1) / fps
                dist = _median_distance(X, X_prev, o.min_common)
                near = np.nonzero(dist < radius)[0]
                if near.size:
                    nviews = (g[near] >= 0).sum(1)
                    best = near[np.lexsort((dist[near], -nviews))[0]]
                    chosen[:, t] = g[best]
                    X_prev = np.where(np.isfinite(X[best]), X[best], X_prev)
                    age = 1
                    continue
            age += 1

    X0 = points_t[start][choice]
    follow(range(start + 1, T), X0)
    follow(range(start - 1, -1, -1), X0)

    sel = np.clip(chosen, 0, None)
    ci = np.arange(C)[:, None]
    ti = np.arange(T)[None, :]
    kp = uv[ci, ti, sel].copy()
    cf = conf[ci, ti, sel].copy()
    kp[chosen < 0] = np.nan
    cf[chosen < 0] = 0.0
    return Association(kp, cf, chosen, start, people_at_start)
