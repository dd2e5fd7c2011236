"""Left/right swap details that mutation testing showed the other tests did not pin (issue 16): the
name rules, the candidate labellings, the Viterbi decoder against brute force, the continuity cost
by hand."""

from itertools import product
from math import comb

import numpy as np

from simspine.multiview.lr_swap import (
    _continuity,
    _side_free,
    _viterbi,
    labellings,
    swap_groups,
    swap_index,
)


def test_swap_index_naming_rules():
    names = ["LHip", "RHip", "Lumbar", "left_knee", "RIGHT_KNEE", "LeftEye", "RightEye", "hip_l", "hip_r",
             "Nose", "LShoulder", "Lx", "Rx", "foot_L", "Left"]
    s = swap_index(names)
    assert s.tolist() == [1, 0, 2, 4, 3, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14]  # Lx: lower-case x, no pair
    assert (s[s] == np.arange(len(names))).all()
    # only mutual pairs: "LHip" -> "RHip" exists, but "RHip" maps to "LHip"; a one-sided match is dropped
    assert swap_index(["LHip"]).tolist() == [0]
    assert swap_index(["Lhip", "Rhip"]).tolist() == [0, 1]  # L/R must be followed by an upper-case letter
    assert swap_index(["left", "right"]).tolist() == [0, 1]  # a bare prefix is not a name
    assert swap_index([]).tolist() == []


def test_side_free_names():
    assert [_side_free(n) for n in ("LHip", "RBigToe", "left_knee", "RightEye", "hip_l", "Hip_R",
                                    "Lumbar", "Lx", "_l")] == \
        ["hip", "bigtoe", "knee", "eye", "hip", "hip", "lumbar", "lx", ""]


def test_swap_groups_by_word_and_order():
    names = ["LShoulder", "RShoulder", "LBigToe", "RBigToe", "LEye", "REye", "LThing", "RThing", "Neck",
             "LHip", "RHip"]
    g = swap_groups(names)
    assert sorted(g) == ["arms", "face", "legs"]
    assert g["arms"].tolist() == [0, 1] and g["legs"].tolist() == [2, 3, 9, 10] and g["face"].tolist() == [4, 5]
    assert g["arms"].dtype.kind == "i"
    # an explicit swap that pairs only one side closes the group under it
    sw = np.arange(len(names))
    sw[0], sw[1] = 1, 0
    assert {k: v.tolist() for k, v in swap_groups(names, sw).items()} == {"arms": [0, 1]}
    assert swap_groups(["Neck", "Nose"]) == {}


def test_labellings_counts_and_order():
    for C in (2, 3, 4, 5, 6):
        h = labellings(C)
        m = min(C // 2, 2)
        assert not h[0].any()
        assert len({tuple(r) for r in h}) == len(h)
        n_mirror = h.sum(1)
        assert set(n_mirror.tolist()) <= set(range(0, m + 1)) | set(range(C - m, C + 1))
        expect = {tuple(r) for n in range(1, m + 1) for r in _choose(C, n)}
        expect |= {tuple(~np.array(r)) for r in expect} | {(False,) * C}
        assert {tuple(r) for r in h} == expect
    assert labellings(4, max_mirrored=1).tolist() == [
        [False] * 4, [True, False, False, False], [False, True, True, True], [False, True, False, False],
        [True, False, True, True], [False, False, True, False], [True, True, False, True],
        [False, False, False, True], [True, True, True, False]]
    assert len(labellings(4)) == 1 + 2 * 4 + comb(4, 2)
    assert labellings(4, max_mirrored=0).tolist() == [[False] * 4]
    assert labellings(1).shape == (1, 1)


def _choose(C, n):
    from itertools import combinations

    for v in combinations(range(C), n):
        r = np.zeros(C, bool)
        r[list(v)] = True
        yield r


def test_viterbi_equals_brute_force():
    rng = np.random.default_rng(0)
    for T, H in ((1, 3), (4, 3), (5, 2)):
        cost = rng.random((T, H)) * 3
        trans = rng.random((H, H)) * 2
        start = rng.random(H)
        extra_m = rng.random((T, H, H))
        for extra in (None, lambda t, m=extra_m: m[t]):
            best, best_p = np.inf, None
            for p in product(range(H), repeat=T):
                c = start[p[0]] + sum(cost[t, p[t]] for t in range(T))
                c += sum(trans[p[t - 1], p[t]] + (0 if extra is None else extra(t)[p[t - 1], p[t]])
                         for t in range(1, T))
                if c < best:
                    best, best_p = c, p
            assert _viterbi(cost, trans, start, extra).tolist() == list(best_p)
    assert _viterbi(np.zeros((0, 3)), np.zeros((3, 3)), np.zeros(3)).shape == (0,)


def test_continuity_cost_by_hand():
    # 2 labellings, 2 frames, 2 keypoints; scale 0.1 m
    P = np.zeros((2, 2, 2, 3))
    P[0, 1, 0] = [0.05, 0, 0]  # labelling 0 moves keypoint 0 by 5 cm
    P[1, 1] = [[0.3, 0, 0], [0.02, 0, 0]]  # labelling 1 at t=1: far (saturates at 1) and 2 cm
    P[1, 0, 1] = np.nan  # labelling 1 at t=0 does not see keypoint 1
    c = _continuity(P, 0.1)(1)
    # from a at t-1 to b at t: mean over keypoints seen in both of min(d / 0.1, 1)^2
    assert np.allclose(c, [[(0.25 + 0) / 2, (1 + 0.04) / 2], [0.25, 1.0]])
    P[:, :, 1] = np.nan
    P[:, 0, 0] = np.nan
    assert np.array_equal(_continuity(P, 0.1)(1), np.zeros((2, 2)))


NAMES = ["LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee",
         "LAnkle", "RAnkle", "Neck"]


def _scene(swapped_view=1, T=8):
    """A standing skeleton walking slowly along Y (Human3.6M S9 world, Z up), seen by the four S9
    cameras; ``swapped_view`` reports left for right in every frame."""
    from simspine.calibration import h36m_cameras

    cams = h36m_cameras("S9")
    base = np.array([[0.2, 0, 1.45], [-0.2, 0, 1.45], [0.3, 0, 1.15], [-0.3, 0, 1.15], [0.32, 0, 0.9],
                     [-0.32, 0, 0.9], [0.12, 0, 0.95], [-0.12, 0, 0.95], [0.12, 0, 0.5], [-0.12, 0, 0.5],
                     [0.12, 0, 0.08], [-0.12, 0, 0.08], [0, 0, 1.5]])
    X = base[None] + np.linspace(0, 0.1, T)[:, None, None] * [0, 1, 0]
    uv = np.stack([c.project(X.reshape(-1, 3)).reshape(T, len(NAMES), 2) for c in cams])
    swap = swap_index(NAMES)
    if swapped_view is not None:
        uv[swapped_view] = uv[swapped_view][:, swap]
    return cams, uv, np.ones(uv.shape[:3]), swap


def test_fix_lr_swaps_uses_its_options_and_returns_floats():
    from simspine.multiview.lr_swap import SwapOptions, fix_lr_swaps

    cams, uv, conf, swap = _scene()
    out, oc, sw = fix_lr_swaps(cams, uv, conf, swap)
    assert sw[1].all() and not sw[[0, 2, 3]].any()
    np.testing.assert_allclose(out, _scene(None)[1], atol=1e-9)
    # a confidence threshold above every confidence: no evidence, nothing is worth switching
    _, _, none = fix_lr_swaps(cams, uv, conf, swap, SwapOptions(conf_threshold=2.0))
    assert not none.any()
    # integer pixels and confidences: float copies out
    o2, c2, _ = fix_lr_swaps(cams[:2], np.round(uv[:2]).astype(int), np.ones(uv.shape[:3], int)[:2], swap)
    assert o2.dtype == float and c2.dtype == float


def test_fix_lr_swaps_by_group_decides_groups_and_the_rest():
    from simspine.multiview.lr_swap import fix_lr_swaps_by_group

    cams, uv, conf, swap = _scene()
    # arms: 3 pairs (= min_group_pairs): decided on their own; legs: 3 pairs too
    _, _, sw = fix_lr_swaps_by_group(cams, uv, conf, swap, names=NAMES)
    assert sorted(sw) == ["arms", "legs"]
    assert sw["arms"][1].all() and not sw["arms"][[0, 2, 3]].any()
    # no groups: the whole-view decision covers every pair
    out, _, sw = fix_lr_swaps_by_group(cams, uv, conf, swap, groups={})
    assert sorted(sw) == ["view"] and sw["view"][1].all() and not sw["view"][[0, 2, 3]].any()
    np.testing.assert_allclose(out, _scene(None)[1], atol=1e-9)


def test_labelling_costs_use_the_swap_confidence_threshold():
    from simspine.multiview.lr_swap import SwapOptions, labelling_costs

    cams, uv, conf, swap = _scene(None, T=2)
    hyps = labellings(4)
    _, pts = labelling_costs(cams, uv, np.full(conf.shape, 0.1), swap, hyps, SwapOptions(conf_threshold=0.05))
    assert np.isfinite(pts[0]).all()
    cost, pts = labelling_costs(cams, uv, conf, np.arange(len(NAMES)), hyps)
    assert cost.shape == (2, len(hyps)) and not cost.any() and pts.shape == (len(hyps), 2, 0, 3)


def test_fix_lr_swaps_by_group_scores_the_rest_with_the_callers_triangulation():
    """Views 1 and 2 swapped from frame 3 on: mirroring {1, 2} or {0, 3} fits equally well; only the
    3D continuity (points from the scoring triangulations) tells them apart. Options that reject every
    point (an uncertainty bound of 0) leave it nothing, so the decision changes -- and the keypoints of
    no group must be decided exactly as :func:`fix_lr_swaps` decides them with the same options."""
    from simspine.multiview.lr_swap import fix_lr_swaps, fix_lr_swaps_by_group
    from simspine.multiview.triangulation import TriangulationOptions

    cams, uv, conf, swap = _scene(None, T=10)
    uv[1:3, 3:] = uv[1:3, 3:][:, :, swap]
    blind = TriangulationOptions(max_uncertainty_mm_per_px=0.0)
    truth = np.zeros((4, 10), bool)
    truth[1:3, 3:] = True
    _, _, ref = fix_lr_swaps(cams, uv, conf, swap)
    assert np.array_equal(ref, truth)
    _, _, ref_blind = fix_lr_swaps(cams, uv, conf, swap, triangulation=blind)
    assert np.array_equal(ref_blind, truth[[1, 0, 0, 1]])  # the tie goes to the first-listed {0, 3}
    for t, want in ((None, ref), (blind, ref_blind)):
        _, _, sw = fix_lr_swaps_by_group(cams, uv, conf, swap, groups={}, triangulation=t)
        assert np.array_equal(sw["view"], want)
