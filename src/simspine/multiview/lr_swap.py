"""Left/right swap recovery per camera view.

2D body detectors sometimes label a person's left side as the right one (and vice versa) in one
camera, typically for a run of frames while the person's front/back is unclear from that view.
Per point, robust triangulation would then drop that view (or, with only two views left, refuse
the point or pick a wrong one); here the view's labelling is corrected instead, so it keeps
contributing.

**Labellings.** For C cameras a labelling says which views are mirrored with the skeleton's
left/right table. Mirroring *every* view gives an equally consistent (mirrored) skeleton, so no
single frame tells a labelling from its complement; time does (below). The candidates are the
labellings that mirror up to two views (for four cameras: all of them) and their complements.

**Evidence per frame.** For each candidate labelling the left/right keypoints are triangulated
robustly from all views, and every observation is scored by its truncated reprojection error::

    D_h(t) = sum_{c, k} min(e_h[t, k, c] / tau, 1)^2

over the views c that see both sides of k's pair confidently (the same observations for every
labelling). The joint fit, rather than checking each view against a triangulation of the others,
matters: two nearly facing cameras have almost parallel rays, so a third, mirrored view can
agree with them at a wrong depth, and a leave-one-out reference then blames a correct view.

**Temporal smoothing.** Frames are decoded jointly with Viterbi over the candidate labellings,
minimising ``sum_t D_{h_t}(t) + switch_cost * (views changing label between t-1 and t)``, starting
from the detected labelling (a labelling at the first frame pays for each view it mirrors). So
a labelling and its complement are told apart by continuity: when a second camera swaps while
another is still swapped, mirroring those two is one change away and their complement three.
When two of four views swap over exactly the same frames neither geometry nor the switch count
tells which two; a small 3D continuity cost between consecutive frames (``continuity_cost``)
then keeps the skeleton's left side on the left. Swaps come in runs, and the decoding is the
exact optimum of that prior: a
lone noisy frame cannot flip a view unless its own evidence exceeds twice the switch cost, a run
flips once its summed evidence does, and frames without evidence (occlusion, missed detections)
carry the state on -- where a median filter or a hysteresis threshold on per-frame decisions has
to guess what an undecided frame means and fix a window length.

With two cameras nothing can be decided (mirroring either view fits equally well), so two views
are returned unchanged.

**Per keypoint group.** A detector does not always swap a whole view: on a real recording
(pose2sim's Demo_SinglePerson, MediaPipe) one camera swaps the arms and the legs over different
frames, at times only the upper body. :func:`fix_lr_swaps_by_group` therefore decodes each group
of left/right keypoints (:func:`swap_groups`: arms -- shoulders, elbows, wrists, hands, clavicles,
latissimi; legs -- hips, knees, ankles, feet; face -- eyes, ears, mouth) with the same evidence
and the same Viterbi, restricted to that group's keypoints, plus ``group_deviation_cost`` per
frame and view labelled otherwise than the whole-view decision. A group with fewer than
``min_group_pairs`` pairs (default 3: the face's eyes and ears, whose sides lie a few cm apart
and give little evidence), and left/right keypoints in no group, follow the whole-view decision
(all left/right keypoints together, as above; its evidence is the sum of the groups', since
every keypoint is triangulated on its own, so nothing is triangulated twice). On
Demo_SinglePerson this gives the whole-view result (cam02 41-63, 67-74); there the detector's
remaining errors are single frames flickering between labellings (65, 67 swapped, 64, 66 not; 81
only the arms), which a lone frame's evidence cannot pay two switches for -- whole views or groups.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

from simspine.cameras import Camera


@dataclass(frozen=True)
class SwapOptions:
    """Parameters of :func:`fix_lr_swaps`.

    Attributes:
        tau_px: truncation of the per-keypoint reprojection error (px): errors at or above it count
            the same (1); a correct labelling typically reprojects within a few px, a mirrored one
            by the distance between the left and right points (tens of px).
        switch_cost: cost of changing state between consecutive frames, in units of one keypoint
            fully mismatched. A run of swapped frames is corrected once its total evidence exceeds
            it; a lone frame needs twice as much.
        conf_threshold: 2D points under this confidence give no evidence.
        max_mirrored: most views mirrored at once that are considered, besides the complements
            (default ``min(C // 2, 2)``); one triangulation of the left/right keypoints per
            candidate and complement pair, sum over n <= max_mirrored of C choose n (8 for 4
            cameras).
        continuity_cost: weight of the 3D continuity between consecutive frames (mean over the
            left/right keypoints of ``min(displacement / continuity_m, 1)^2``; 0 switches it off).
            It tells a labelling from its complement -- two of four views swapping over the same
            frames fit exactly as well as the other two doing so, but only one keeps the skeleton's
            left side on the left -- and is kept below ``switch_cost`` so that it only breaks such ties.
        continuity_m: displacement per frame (m) at which the continuity cost saturates: about
            the width between left and right keypoints, well above limb motion per frame.
        min_group_pairs: fewest left/right pairs a keypoint group (:func:`swap_groups`) needs to
            be decided on its own by :func:`fix_lr_swaps_by_group`; smaller groups follow the
            whole-view decision.
        group_deviation_cost: cost per frame and view of a group labelled otherwise than the whole
            view (:func:`fix_lr_swaps_by_group`): a group departs from the whole-view decision only
            where its own evidence pays for it -- a run of frames in which only the arms are
            swapped does, a group's noisy evidence in a stretch where the detector flickers
            between labellings from frame to frame does not (there the whole body's evidence,
            about twice a group's, decides better).
    """

    tau_px: float = 30.0
    switch_cost: float = 4.0
    conf_threshold: float = 0.3
    max_mirrored: int | None = None
    continuity_cost: float = 2.0
    continuity_m: float = 0.1
    min_group_pairs: int = 3
    group_deviation_cost: float = 2.0


def swap_index(names) -> np.ndarray:
    """(K,) index of each keypoint's left/right counterpart (itself for midline points), from names.

    Recognised pairs: ``LHip``/``RHip`` (an L or R followed by an upper-case letter, as in
    SpineTrack-37, Halpe-26, Body-25), ``left_hip``/``right_hip`` and ``LeftHip``/``RightHip``
    (case-insensitive ``left``/``right`` prefixes, as in BlazePose), ``hip_l``/``hip_r``
    (OpenSim's suffixes). A name whose counterpart is absent maps to itself.
    """
    names = [str(n) for n in names]
    lower = {n.lower(): i for i, n in enumerate(names)}
    exact = {n: i for i, n in enumerate(names)}
    out = np.arange(len(names))
    for i, n in enumerate(names):
        other = None
        m = {"L": "R", "R": "L"}.get(n[:1])
        if m and n[1:2].isupper():
            other = exact.get(m + n[1:])
        low = n.lower()
        for a, b in (("left", "right"), ("right", "left")):
            if other is None and low.startswith(a) and len(low) > len(a):
                other = lower.get(b + low[len(a):])
        for a, b in (("_l", "_r"), ("_r", "_l")):
            if other is None and low.endswith(a):
                other = lower.get(low[: -len(a)] + b)
        if other is not None and other != i:
            out[i] = other
    # keep only mutual pairs, so the result is an involution (applying it twice is the identity)
    mutual = out[out] == np.arange(len(names))
    return np.where(mutual, out, np.arange(len(names)))


#: keypoint groups decided separately (:func:`swap_groups`): words in the keypoint's name once its
#: left/right marker is removed, lower case
GROUP_WORDS = {
    "arms": ("shoulder", "elbow", "wrist", "hand", "thumb", "index", "pinky", "finger", "clavicle",
             "latissimus", "humerus", "radius", "ulna"),
    "legs": ("hip", "knee", "ankle", "toe", "heel", "foot", "thigh", "shank", "femur", "tibia", "calc"),
    "face": ("eye", "ear", "mouth", "cheek", "brow"),
}


def _side_free(name: str) -> str:
    """``name`` lower case without its left/right marker (``LHip``, ``left_hip``, ``hip_l`` -> ``hip``)."""
    n = str(name)
    if n[:1] in "LR" and n[1:2].isupper():
        n = n[1:]
    low = n.lower()
    for a in ("left", "right"):
        if low.startswith(a):
            low = low[len(a):]
    for a in ("_l", "_r"):
        if low.endswith(a):
            low = low[: -len(a)]
    return low.strip("_")


def swap_groups(names, swap=None) -> dict[str, np.ndarray]:
    """Left/right keypoints by body part, from their names: ``{"arms": idx, "legs": idx, "face": idx}``
    (sorted keypoint indices, each group closed under ``swap``; empty groups left out).

    ``swap`` (K,) defaults to :func:`swap_index` of ``names``. A pair is placed by the first of
    :data:`GROUP_WORDS` found in its side-free name (``LBigToe`` -> legs; hip is tested after the
    arm words, and no arm word contains it); pairs matching no word are in no group.
    """
    names = [str(n) for n in names]
    swap = swap_index(names) if swap is None else np.asarray(swap, dtype=int)
    out: dict[str, list[int]] = {g: [] for g in GROUP_WORDS}
    for k, n in enumerate(names):
        if swap[k] == k:
            continue
        base = _side_free(n)
        for g, words in GROUP_WORDS.items():
            if any(w in base for w in words):
                out[g].append(k)
                break
    res = {}
    for g, idx in out.items():
        idx = np.array(sorted(set(idx) | set(swap[idx].tolist())), dtype=int)
        if idx.size:
            res[g] = idx
    return res


def labellings(C: int, max_mirrored: int | None = None) -> np.ndarray:
    """(H, C) bool candidate labellings (True: view mirrored): the detected one first, then every
    choice of up to ``max_mirrored`` (default ``min(C // 2, 2)``) mirrored views, and the complement
    of each (the same geometry, mirrored), so that a path through time can pass from one swapped
    view to two and back without a jump."""
    m = min(C // 2, 2) if max_mirrored is None else max_mirrored
    out = {(False,) * C: None}
    for n in range(1, m + 1):
        for views in combinations(range(C), n):
            h = np.zeros(C, bool)
            h[list(views)] = True
            out.setdefault(tuple(h), None)
            out.setdefault(tuple(~h), None)
    return np.array(list(out), dtype=bool).reshape(-1, C)


def _viterbi(cost: np.ndarray, trans: np.ndarray, start: np.ndarray, extra=None) -> np.ndarray:
    """(T,) state indices minimising ``start[s_0] + sum_t cost[t, s_t] + sum_t trans[s_{t-1}, s_t]``
    (plus ``extra(t)[s_{t-1}, s_t]`` when given: a per-frame (H, H) transition cost).

    ``cost`` (T, H), ``trans`` (H, H), ``start`` (H,).
    """
    T, H = cost.shape
    if T == 0:
        return np.zeros(0, dtype=int)
    back = np.zeros((T, H), dtype=int)
    acc = start + cost[0]
    for t in range(1, T):
        tot = acc[:, None] + trans  # (from, to)
        if extra is not None:
            tot = tot + extra(t)
        back[t] = tot.argmin(0)
        acc = tot[back[t], np.arange(H)] + cost[t]
    path = np.empty(T, dtype=int)
    path[-1] = int(acc.argmin())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _continuity(points: np.ndarray, scale_m: float):
    """Per-frame (H, H) cost of passing from labelling a at t-1 to b at t: the mean over the
    left/right keypoints seen in both of ``min(|X_b(t) - X_a(t-1)| / scale_m, 1)^2``.

    ``points`` (H, T, L, 3), metres. A mirrored skeleton jumps by the body's width, so this tells a
    labelling from its complement; labellings whose fits agree (a wrong view is outvoted) cost
    the same.
    """
    def extra(t):
        d = np.linalg.norm(points[None, :, t] - points[:, None, t - 1], axis=-1) / scale_m  # (H, H, L)
        ok = np.isfinite(d)
        n = ok.sum(-1)
        c = np.where(ok, np.minimum(np.nan_to_num(d), 1.0) ** 2, 0.0).sum(-1)
        return np.where(n > 0, c / np.maximum(n, 1), 0.0)
    return extra


def labelling_costs(cameras: list[Camera], uv: np.ndarray, conf: np.ndarray, swap: np.ndarray,
                    hyps: np.ndarray, options: SwapOptions | None = None, triangulation=None) -> np.ndarray:
    """Evidence cost ``D_h(t)`` (T, H) of each labelling ``hyps`` (H, C) at each frame, and the
    triangulated left/right keypoints under each labelling (H, T, L, 3), metres (NaN where invalid),
    L the keypoints with a counterpart, in index order.

    ``uv`` (C, T, K, 2) px, ``conf`` (C, T, K), ``swap`` (K,); the left/right keypoints are
    triangulated with ``triangulation`` (:class:`TriangulationOptions`, default options). See the
    module docstring.
    """
    from simspine.multiview.triangulation import TriangulationOptions, triangulate

    o = options or SwapOptions()
    C, T, K = conf.shape
    lr = np.nonzero(swap != np.arange(K))[0]
    cost = np.zeros((T, len(hyps)))
    points = np.full((len(hyps), T, lr.size, 3), np.nan)
    if lr.size == 0:
        return cost, points
    mirror = np.searchsorted(lr, swap[lr])  # the counterpart's position among lr
    done = {}
    # the scores are truncated at tau_px: a few refinement steps to 0.1 mm are plenty, and keep the
    # 2^(C-1)-odd triangulations cheap
    base = triangulation or TriangulationOptions()
    topt = replace(base, conf_threshold=o.conf_threshold, iterations=min(base.iterations, 4),
                   tol_m=max(base.tol_m, 1e-4))
    seen = np.isfinite(uv).all(-1) & (np.nan_to_num(conf) >= o.conf_threshold)  # (C, T, K)
    # scored observations: view c, keypoint k where both sides of k's pair are seen (then every
    # labelling scores the same observations)
    scored = np.moveaxis(seen[:, :, lr] & seen[:, :, swap[lr]], 0, -1)  # (T, L, C)
    for h, mirrored in enumerate(hyps):
        # a labelling and its complement describe the same (mirrored) skeleton: same errors
        key = tuple(mirrored ^ mirrored[0])
        if key in done:
            cost[:, h] = cost[:, done[key]]
            points[h] = points[done[key]][:, mirror]
            continue
        done[key] = h
        idx = np.where(mirrored[:, None], swap[lr][None], lr[None])  # (C, L) keypoint each view reports
        u = np.stack([uv[c][:, idx[c]] for c in range(C)])
        w = np.stack([conf[c][:, idx[c]] for c in range(C)])
        res = triangulate(cameras, u, w, topt)
        e = np.nan_to_num(res.view_error / o.tau_px, nan=1.0)
        cost[:, h] = np.where(scored, np.minimum(e, 1.0) ** 2, 0.0).sum((1, 2))
        points[h] = res.points
    return cost, points


def fix_lr_swaps(cameras: list[Camera], uv, conf, swap, options: SwapOptions | None = None,
                 triangulation=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo left/right swaps of whole views over runs of frames.

    Args:
        cameras: C calibrated cameras.
        uv: (C, T, K, 2) detected pixels (NaN where not reported).
        conf: (C, T, K) confidences (0 where not reported).
        swap: (K,) index of each keypoint's left/right counterpart (:func:`swap_index`, or
            :attr:`simspine.skeletons.Skeleton.swap`).
        options: :class:`SwapOptions`.
        triangulation: :class:`~simspine.multiview.triangulation.TriangulationOptions` of the
            triangulations that score the labellings (default options).

    Returns:
        ``(uv, conf, swapped)``: corrected copies of ``uv`` and ``conf`` (the frames of a view judged
        swapped are mirrored with ``swap``) and the (C, T) bool mask of those view-frames.
    """
    o = options or SwapOptions()
    uv, conf, swap = _check(uv, conf, swap)
    swapped = _decode(cameras, uv, conf, swap, o, triangulation)
    out_uv = np.where(swapped[..., None, None], uv[:, :, swap], uv)
    out_conf = np.where(swapped[..., None], conf[:, :, swap], conf)
    return out_uv, out_conf, swapped


def _check(uv, conf, swap):
    uv = np.asarray(uv, dtype=float)
    conf = np.asarray(conf, dtype=float)
    swap = np.asarray(swap, dtype=int)
    C, T, K = conf.shape
    if uv.shape != (C, T, K, 2) or swap.shape != (K,):
        raise ValueError(f"expected uv (C, T, K, 2), conf (C, T, K), swap (K,); got {uv.shape}, "
                         f"{conf.shape}, {swap.shape}")
    return uv, conf, swap


def _decode(cameras, uv, conf, swap, o: SwapOptions, triangulation, evidence=None) -> np.ndarray:
    """(C, T) bool: the Viterbi labelling of each view-frame for the left/right keypoints of ``swap``.

    ``evidence``: precomputed ``(hyps, cost, points)`` (:func:`labelling_costs` of those keypoints).
    """
    C, T, K = conf.shape
    swapped = np.zeros((C, T), dtype=bool)
    if C >= 3 and T and (swap != np.arange(K)).any():
        if evidence is None:
            hyps = labellings(C, o.max_mirrored)
            cost, points = labelling_costs(cameras, uv, conf, swap, hyps, o, triangulation)
        else:
            hyps, cost, points = evidence
        hamming = (hyps[:, None, :] != hyps[None, :, :]).sum(-1)
        extra = _continuity(points, o.continuity_m) if o.continuity_cost > 0 else None
        if extra is not None:
            base = extra
            extra = lambda t: o.continuity_cost * base(t)  # noqa: E731
        path = _viterbi(cost, o.switch_cost * hamming, o.switch_cost * hyps.sum(-1), extra)
        swapped = hyps[path].T
    return swapped


def fix_lr_swaps_by_group(cameras: list[Camera], uv, conf, swap, groups: dict[str, np.ndarray] | None = None,
                          options: SwapOptions | None = None, triangulation=None, names=None):
    """Undo left/right swaps per keypoint group and view over runs of frames (module docstring).

    Args:
        cameras, uv, conf, swap, options, triangulation: as :func:`fix_lr_swaps`.
        groups: ``{name: keypoint indices}`` (:func:`swap_groups`); default ``swap_groups(names, swap)``,
            or no groups (whole views only) when neither is given.
        names: keypoint names, used only when ``groups`` is not given.

    Returns:
        ``(uv, conf, swapped)``: corrected copies of ``uv`` and ``conf`` and ``{group: (C, T) bool}``
        of the view-frames whose group was mirrored; the key ``"view"`` holds the whole-view
        decisions, applied to the left/right keypoints of no group or of a group with fewer than
        ``options.min_group_pairs`` pairs (absent when there are none).
    """
    o = options or SwapOptions()
    uv, conf, swap = _check(uv, conf, swap)
    C, T, K = conf.shape
    if groups is None:
        groups = swap_groups(names, swap) if names is not None else {}
    lr = swap != np.arange(K)
    ident = np.arange(K)
    mask = np.zeros((C, T, K), dtype=bool)  # keypoint k of view c at frame t mirrored
    swapped: dict[str, np.ndarray] = {}
    if C < 3 or not T or not lr.any():
        return uv.copy(), conf.copy(), swapped
    # the keypoints are triangulated independently, so the whole-view evidence is the sum of the
    # groups' and the rest's: every left/right keypoint is triangulated once per labelling
    hyps = labellings(C, o.max_mirrored)
    parts, decided = [], []  # per part: (cost, points); per decided group: (name, keypoint mask, sub-swap)
    rest = lr.copy()
    for g, idx in groups.items():
        inside = np.zeros(K, dtype=bool)
        inside[np.asarray(idx, dtype=int)] = True
        own = inside & rest & inside[swap]  # pairs with both sides in the group (and no earlier group)
        if own.sum() < 2 * o.min_group_pairs:
            continue
        sw = np.where(own, swap, ident)
        parts.append(labelling_costs(cameras, uv, conf, sw, hyps, o, triangulation))
        decided.append((g, own, sw))
        rest &= ~own
    if rest.any():
        parts.append(labelling_costs(cameras, uv, conf, np.where(rest, swap, ident), hyps, o, triangulation))
    ev = (hyps, sum(c for c, _ in parts), np.concatenate([p for _, p in parts], axis=2))
    view = _decode(cameras, uv, conf, swap, o, triangulation, ev)
    if rest.any():
        swapped["view"] = view
        mask |= view[..., None] & rest
    # each group departs from the whole-view labelling only where its own evidence pays for it
    vpath = (hyps[None, :, :] == view.T[:, None, :]).all(-1).argmax(1)  # (T,) index of the view's labelling
    hamming = (hyps[:, None, :] != hyps[None, :, :]).sum(-1)
    for (g, own, sw), (cost, points) in zip(decided, parts, strict=False):
        cost = cost + o.group_deviation_cost * hamming[vpath]
        swapped[g] = _decode(cameras, uv, conf, sw, o, triangulation, (hyps, cost, points))
        mask |= swapped[g][..., None] & own
    out_uv = np.where(mask[..., None], uv[:, :, swap], uv)
    out_conf = np.where(mask, conf[:, :, swap], conf)
    return out_uv, out_conf, swapped
