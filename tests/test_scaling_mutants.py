"""Pure-numpy parts of scaling that mutation testing showed the other tests did not pin (issue 16):
the robust pair length against a hand computation, pair distances, the asymmetry rule at its
boundary, the weights of a symmetrised segment, the sampled frames."""

import numpy as np
import pytest

from simspine.biomech import scaling as S
from simspine.biomech.scaling import PairLength, asymmetric_segments, robust_length
from simspine.trajectories import Trajectories


def _robust_by_hand(d):
    d = d[np.isfinite(d)]
    med = np.median(d)
    keep = np.sort(d[(d >= 0.8 * med) & (d <= 1.25 * med)])
    k = int(0.10 * keep.size)
    core = keep[k:keep.size - k] if keep.size - 2 * k > 0 else keep
    return core.mean(), keep.size, d.size - keep.size, keep.std() / keep.mean()


def test_robust_stats_by_hand():
    rng = np.random.default_rng(0)
    d = 0.4 + 0.01 * rng.normal(size=57)
    d[:3] = [0.2, 0.9, 0.32]  # implausible: below 0.8x or above 1.25x the median
    d[3] = 0.5  # near the upper edge of the band (1.25 x the median)
    d[10] = np.nan
    got = S._robust_stats(d)
    ref = _robust_by_hand(d)
    assert got[1] == ref[1] and got[2] == ref[2] and got[2] >= 2
    np.testing.assert_allclose([got[0], got[3]], [ref[0], ref[3]], rtol=1e-12)
    assert robust_length(d) == got[:3]
    # band edges are inclusive: 0.8 and 1.25 times the median are kept
    e = np.array([0.8, 1.0, 1.0, 1.0, 1.25])
    assert S._robust_stats(e)[1:3] == (5, 0)
    # fewer than 10 samples: nothing trimmed from the ends; 10 or more: 10 % from each end
    np.testing.assert_allclose(S._robust_stats(np.array([0.9, 1.0, 1.1]))[0], 1.0)
    ten = np.array([0.81, 0.9, 0.95, 1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.24])
    np.testing.assert_allclose(S._robust_stats(ten)[0], ten[1:-1].mean())
    # no finite distance; a single one (spread 0)
    nan = S._robust_stats(np.array([np.nan]))
    assert np.isnan(nan[0]) and nan[1:3] == (0, 0) and np.isnan(nan[3])
    assert S._robust_stats(np.array([0.5])) == (0.5, 1, 0, 0.0)
    zero = S._robust_stats(np.zeros(3))
    assert zero == (0.0, 3, 0, 0.0)


def test_pair_distances_and_key():
    xyz = np.zeros((3, 3, 3))
    xyz[:, 1] = [[3.0, 4.0, 0.0]] * 3
    xyz[:, 2] = [[0.0, 0.0, 2.0]] * 3
    conf = np.ones((3, 3))
    conf[1, 1] = 0.0
    conf[2, 0] = 0.0
    tr = Trajectories(np.arange(3.0), ["a", "b", "c"], xyz, conf)
    np.testing.assert_array_equal(S._pair_distances(tr, "a", "b"), [5.0, np.nan, np.nan])
    np.testing.assert_array_equal(S._pair_distances(tr, "c", "b"), [np.sqrt(29.0), np.nan, np.sqrt(29.0)])
    assert S._pair_key("a", "b") == "a-b"


def test_asymmetry_rule():
    assert S._asymmetry(1.0, 0.8) == pytest.approx(0.2 / 0.9)
    assert S._asymmetry(0.8, 1.0) == pytest.approx(0.2 / 0.9)
    f = {"foot_l": 1.0, "foot_r": 1.2, "femur_l": 1.0, "femur_r": 1.1, "tibia_l": 1.0, "torso": 2.0,
         "hand_r": 1.0, "hand_l": 1.0}
    assert asymmetric_segments(f) == ["foot"]  # 0.2/1.1 = 18 % > 15 %; 0.1/1.05 = 9.5 %: not
    # exactly 15 %: not above
    lo = 1.0
    hi = lo * (1 + 0.15 / 2) / (1 - 0.15 / 2)
    assert S._asymmetry(lo, hi) == pytest.approx(0.15)
    assert asymmetric_segments({"x_l": lo, "x_r": hi * 0.9999}) == []
    assert asymmetric_segments({"x_l": lo, "x_r": hi * 1.0001}) == ["x"]


def test_weighted_mean_and_side_weights(monkeypatch):
    assert S._weighted_mean([1.0, 2.0], [1.0, 3.0]) == pytest.approx(1.75)
    lengths = {"l1": PairLength(("a", "b"), 0.3, 10, 0, 0.02), "l2": PairLength(("c", "d"), 0.1, 10, 0, 0.1),
               "r1": PairLength(("e", "f"), 0.3, 10, 0, 0.04), "r2": PairLength(("g", "h"), 0.1, 10, 0, 0.001)}
    segs = {"x_l": ["l1", "l2"], "x_r": ["r1", "r2"], "y_l": ["l2"], "y_r": ["r2"]}
    monkeypatch.setattr(S, "_segment", lambda name: name)
    monkeypatch.setattr(S, "_segment_pairs", lambda seg, lengths: segs[seg])
    sl = (0.02 * 0.09 + 0.1 * 0.01) / 0.1
    sr = (0.04 * 0.09 + 0.001 * 0.01) / 0.1
    assert S._segment_spread("x_l", lengths) == pytest.approx(sl)
    assert S._segment_spread("x_r", lengths) == pytest.approx(sr)
    assert S._segment_spread("y_r", lengths) == 0.01  # floored
    wl, wr = S._side_weights("x", lengths)
    assert wl + wr == pytest.approx(1.0)
    assert wl == pytest.approx((1 / sl**2) / (1 / sl**2 + 1 / sr**2))


def test_sample_frames():
    conf = np.ones((20, 10))
    conf[3, :2] = 0.0  # 8 of 10 markers: below 90 % of the best, left out
    conf[5, 0] = 0.0  # 9 of 10: kept
    tr = Trajectories(np.arange(20.0), [f"m{i}" for i in range(10)], np.zeros((20, 10, 3)), conf)
    cand = np.setdiff1d(np.arange(20), [3])
    np.testing.assert_array_equal(S._sample_frames(tr, 50), cand)
    np.testing.assert_array_equal(S._sample_frames(tr, 19), cand)
    got = S._sample_frames(tr, 4)
    np.testing.assert_array_equal(got, cand[[0, 6, 12, 18]])
