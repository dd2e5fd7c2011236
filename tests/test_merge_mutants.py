"""Merge details that mutation testing showed the other tests did not pin (issue 16): each step
against a hand computation on a few samples (resampling, end holding, neighbour confidences, the
combined trajectories' sources and confidences) and the full error texts."""

import numpy as np
import pytest

from simspine.errors import InputError
from simspine.multiview.merge import (
    MergeOptions,
    _hold_ends,
    _neighbour_min,
    default_correspondence,
    h36m_trajectories,
    merge_markers,
    resample,
    same_frame,
)
from simspine.skeletons import H36M_TO_SPINETRACK, h36m17, h36m32
from simspine.trajectories import Trajectories

F = "world (Z up)"


def test_same_frame_cases():
    assert same_frame("opensim-ground (Y up)", "OpenSim-Ground (Y up, metres)")
    assert same_frame("a", "a") and same_frame("", "")
    assert not same_frame("a", "b")
    assert not same_frame("(x)", "(y)")  # no frame name before the detail
    assert not same_frame("", "(y)")


def test_default_correspondence_cases():
    h = ["RHip", "LHip", "Spine", "Head"]
    assert h[0] in H36M_TO_SPINETRACK or h[1] in H36M_TO_SPINETRACK
    table = default_correspondence(h)
    assert table == {k: v for k, v in H36M_TO_SPINETRACK.items() if k in h}
    assert "Spine" not in table and "Head" not in table
    # a target list restricts the table
    one = next(iter(table.values()))
    assert default_correspondence(h, [one]) == {k: v for k, v in table.items() if v == one}
    # other names: the shared ones, in the trusted order
    assert default_correspondence(["x", "Nose", "LEye"], ["LEye", "Nose", "y"]) == {"Nose": "Nose", "LEye": "LEye"}


def test_h36m_trajectories_units_time_names_and_errors():
    j = np.arange(2 * 17 * 3, dtype=float).reshape(2, 17, 3)
    t = h36m_trajectories(j, rate_hz=25.0, start_s=1.0)
    np.testing.assert_allclose(t.xyz, j * 1e-3)
    np.testing.assert_allclose(t.time, [1.0, 1.04])
    assert t.names == list(h36m17().names) and t.frame == "human3.6m-world (Z up)"
    assert t.meta == {"source": "Human3.6M"}
    m = h36m_trajectories(np.zeros((3, 32, 3)) + 2.0, units="m", frame="f")
    np.testing.assert_allclose(m.xyz, 2.0)
    np.testing.assert_allclose(m.time, [0.0, 0.02, 0.04])
    assert m.names == list(h36m32().names) and m.frame == "f"
    for bad in (np.zeros((3, 32)), np.zeros((3, 16, 3)), np.zeros((3, 32, 2))):
        with pytest.raises(InputError, match=r"^Human3.6M joints must be \(T, 32 or 17, 3\), got "):
            h36m_trajectories(bad)
    with pytest.raises(InputError, match="^units must be 'mm' or 'm', got 'cm'$"):
        h36m_trajectories(j, units="cm")


def _one(t, x, conf=None):
    x = np.asarray(x, float)
    xyz = np.stack([x, 2 * x, -x], -1)[:, None]
    return Trajectories(np.asarray(t, float), ["p"], xyz, None if conf is None else np.asarray(conf, float)[:, None], F)


def test_resample_by_hand():
    src = _one([0.0, 1.0, 2.0, 5.0, 6.0], [0.0, 10.0, np.nan, 50.0, 60.0], [1.0, 0.5, 1.0, 0.2, 0.4])
    # finite samples at 0, 1, 5, 6; gap 1 -> 5 is 4 s long
    tt = np.array([-0.5, 0.0, 0.5, 1.0, 3.0, 5.0, 5.5, 6.0, 7.0])
    xyz, conf = resample(src, tt, max_gap_s=1.0)
    x = xyz[:, 0, 0]
    expect = [np.nan, 0.0, 5.0, 10.0, np.nan, 50.0, 55.0, 60.0, np.nan]
    np.testing.assert_allclose(x, expect)
    np.testing.assert_allclose(xyz[:, 0, 1], 2 * np.array(expect))
    np.testing.assert_allclose(conf[:, 0], [0, 1.0, 0.75, 0.5, 0, 0.2, 0.3, 0.4, 0])
    # a gap of exactly max_gap is bridged; the default max_gap is unlimited
    x4, _ = resample(src, np.array([3.0]), max_gap_s=4.0)
    np.testing.assert_allclose(x4[0, 0, 0], 30.0)
    xd, _ = resample(src, np.array([3.0]))
    np.testing.assert_allclose(xd[0, 0, 0], 30.0)
    # offset added to the source times
    xo, _ = resample(src, np.array([1.5]), time_offset_s=1.0)
    np.testing.assert_allclose(xo[0, 0, 0], 5.0)
    # a point with no finite sample, and a target list that misses every sample
    empty = _one([0.0, 1.0], [np.nan, np.nan])
    xe, ce = resample(empty, np.array([0.5]))
    assert np.isnan(xe).all() and (ce == 0).all()
    xm, cm = resample(src, np.array([10.0, 11.0]))
    assert np.isnan(xm).all() and (cm == 0).all()
    with pytest.raises(InputError, match="^timestamps must increase strictly to resample$"):
        resample(_one([0.0, 1.0, 1.0], [0.0, 1.0, 2.0]), np.array([0.5]))


def test_hold_ends_by_hand():
    x = np.array([np.nan, np.nan, np.nan, 1.0, 2.0, np.nan, np.nan, np.nan])
    xyz = np.stack([x, x, x], -1)[:, None].repeat(2, 1)
    xyz[:, 1] = 7.0  # complete column: untouched
    out, held = _hold_ends(xyz, 2)
    np.testing.assert_array_equal(out[:, 0, 0], [np.nan, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, np.nan])
    assert held[:, 0].tolist() == [False, True, True, False, False, True, True, False]
    assert not held[:, 1].any() and (out[:, 1] == 7.0).all()
    # horizon longer than the ends: clipped at the array's ends
    out5, held5 = _hold_ends(xyz, 5)
    np.testing.assert_array_equal(out5[:, 0, 0], [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert held5[:, 0].sum() == 6
    # all-NaN column: left alone
    o2, h2 = _hold_ends(np.full((4, 1, 3), np.nan), 2)
    assert np.isnan(o2).all() and not h2.any()


def test_neighbour_min_by_hand():
    conf = np.array([[0.9], [0.0], [0.0], [0.4], [0.0]])
    missing = np.array([[False], [True], [True], [False], [True]])
    np.testing.assert_allclose(_neighbour_min(conf, missing)[:, 0], [0.9, 0.4, 0.4, 0.4, 0.4])
    conf[0] = 0.2  # the sample before the gap is the first one
    np.testing.assert_allclose(_neighbour_min(conf, missing)[:, 0], [0.2, 0.2, 0.2, 0.4, 0.4])
    lead = np.array([[True], [False], [True]])
    np.testing.assert_allclose(_neighbour_min(np.array([[0.0], [0.3], [0.0]]), lead)[:, 0], [0.3, 0.3, 0.3])
    none = np.ones((2, 1), bool)
    np.testing.assert_allclose(_neighbour_min(np.zeros((2, 1)), none), 0.0)


def _traj(names, t, fn, conf=0.8):
    t = np.asarray(t, float)
    xyz = np.stack([fn(t, k) for k in range(len(names))], 1)
    return Trajectories(t, names, xyz, np.full((len(t), len(names)), conf), F)


def test_merge_sources_confidences_and_filling():
    names = ["A", "B", "C"]
    t = np.arange(10) / 10.0  # 10 Hz
    pseudo = _traj(names, t, lambda t, k: np.stack([t + k, 0 * t, 0 * t], -1), conf=0.8)
    tr = _traj(["A", "X"], t, lambda t, k: np.stack([t + 10 * k + 0.5, 0 * t, 0 * t], -1), conf=0.9)
    tr.xyz[3, 0] = np.nan  # trusted A missing at frame 3: falls back to pseudo
    pseudo.xyz[5:7, 2] = np.nan  # C missing at 5, 6: pseudo resampling bridges at most 0.15 s -> filled
    opts = MergeOptions(trusted_conf=0.95, pseudo_conf=0.6, filled_conf=0.5, fill_horizon_s=0.2)
    out = merge_markers(pseudo, tr, {"A": "A"}, opts, names=names)
    src = out.meta["sample_source"]
    assert src[:, 0].tolist() == [1, 1, 1, 2, 1, 1, 1, 1, 1, 1]
    assert (src[:, 1] == 2).all()
    assert src[:, 2].tolist() == [2, 2, 2, 2, 2, 3, 3, 2, 2, 2]
    np.testing.assert_allclose(out.xyz[[0, 3], 0, 0], [0.5, 0.3])
    np.testing.assert_allclose(out.conf[:, 0], np.where(np.arange(10) == 3, 0.6 * 0.8, 0.95 * 0.9))
    np.testing.assert_allclose(out.conf[5:7, 2], 0.5 * 0.6 * 0.8)
    np.testing.assert_allclose(out.xyz[5:7, 2, 0], [2.5, 2.6])
    assert out.frame == F and out.names == names
    assert out.meta["merge"] == {"correspondence": {"A": "A"}, "trusted_conf": 0.95, "pseudo_conf": 0.6,
                                 "filled_conf": 0.5, "fill_horizon_s": 0.2,
                                 "source_codes": "0 missing, 1 trusted, 2 pseudo, 3 filled"}
    # without the fallback the trusted marker's gap is filled instead (1 frame <= 2)
    nofb = merge_markers(pseudo, tr, {"A": "A"}, MergeOptions(fallback_to_pseudo=False, fill_horizon_s=0.2),
                         names=names)
    assert nofb.meta["sample_source"][3, 0] == 3
    np.testing.assert_allclose(nofb.xyz[3, 0, 0], 0.8)
    np.testing.assert_allclose(nofb.conf[3, 0], 0.5 * 0.9)
    # horizon 0: nothing filled, C stays missing with confidence 0
    raw = merge_markers(pseudo, tr, {"A": "A"}, MergeOptions(fill_horizon_s=0.0), names=names)
    assert np.isnan(raw.xyz[5:7, 2]).all() and (raw.conf[5:7, 2] == 0).all()
    assert (raw.meta["sample_source"][5:7, 2] == 0).all()


def test_merge_refusals():
    names = ["A", "B"]
    t = np.arange(4) / 10.0
    p = _traj(names, t, lambda t, k: np.stack([t, t, t], -1))
    tr = _traj(["A"], t, lambda t, k: np.stack([t, t, t], -1))
    other = Trajectories(t, ["A"], tr.xyz, None, "elsewhere (Y up)")
    with pytest.raises(InputError, match=r"^pseudo keypoints are in frame 'world \(Z up\)' but trusted markers in "
                                         r"'elsewhere \(Y up\)': convert one of them first \(simspine.frames\)$"):
        merge_markers(p, other, names=names)
    with pytest.raises(InputError, match="^correspondence names trusted markers that are not there: Q, R$"):
        merge_markers(p, tr, {"Q": "A", "R": "B"}, names=names)
    with pytest.raises(InputError, match="^correspondence targets unknown keypoint names: Z$"):
        merge_markers(p, tr, {"A": "Z"}, names=names)
    with pytest.raises(InputError, match="^no trusted marker corresponds to a model marker name; pass a correspondence table$"):
        merge_markers(p, tr, {}, names=names)
    empty = Trajectories(np.zeros(0), ["A"], np.zeros((0, 1, 3)), None, F)
    with pytest.raises(InputError, match="^trusted markers have no frames$"):
        merge_markers(p, empty, {"A": "A"}, names=names)


def test_merge_pseudo_resampling_window_offset_and_uneven_trusted_clock():
    names = ["A", "B", "C"]
    tp = np.arange(10) / 10.0  # pseudo at 10 Hz
    pseudo = _traj(names, tp, lambda t, k: np.stack([10 * t + k, 0 * t, 0 * t], -1), conf=0.8)
    pseudo.xyz[5, 2] = np.nan  # C: one missing sample, a 0.2 s hole
    tt = np.arange(19) / 20.0  # trusted at 20 Hz
    tr = _traj(["A"], tt, lambda t, k: np.stack([10 * t, 0 * t, 0 * t], -1), conf=1.0)
    out = merge_markers(pseudo, tr, {"A": "A"}, MergeOptions(fill_horizon_s=0.0), names=names)
    assert out.meta["sample_source"].dtype == np.int8
    # B between pseudo samples 0.1 s apart: interpolated (window 1.5 frames = 0.15 s)
    np.testing.assert_allclose(out.xyz[1, 1, 0], 10 * 0.05 + 1)
    # C inside the 0.2 s hole: wider than 1.5 pseudo frames, not bridged
    assert np.isnan(out.xyz[9, 2]).all() and np.isfinite(out.xyz[8, 2]).all()
    # the time offset moves the pseudo clock: pseudo time 0.0 lands at trusted time 0.1
    off = merge_markers(pseudo, tr, {"A": "A"}, MergeOptions(fill_horizon_s=0.0, time_offset_s=0.1), names=names)
    np.testing.assert_allclose(off.xyz[2, 1, 0], 1.0)
    assert np.isnan(off.xyz[0, 1]).all()
    # trusted frames at uneven times (a dropped frame): the gap is filled in time, not in frames
    tu = np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.7])
    tr2 = _traj(["A"], tu, lambda t, k: np.stack([10 * t, 0 * t, 0 * t], -1), conf=1.0)
    tr2.xyz[2, 0] = np.nan
    b = _traj(["B"], tu, lambda t, k: np.stack([t, t, t], -1))
    u = merge_markers(b, tr2, {"A": "A"}, MergeOptions(fallback_to_pseudo=False, fill_horizon_s=0.2), names=["A", "B"])
    assert u.meta["sample_source"][2, 0] == 3
    np.testing.assert_allclose(u.xyz[2, 0, 0], 2.0)
