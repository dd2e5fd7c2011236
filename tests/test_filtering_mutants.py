"""Filtering details that mutation testing showed the other tests did not pin (issue 16).

Each function is compared with an independent computation: scipy's ``sosfiltfilt`` run by hand
on each finite run, scipy's own padding rule, a plain-loop Hampel filter, and the exact
boundaries (a run one sample longer than the padding, a gap of exactly ``max_gap``).
"""

import numpy as np
import pytest
from scipy import signal

from simspine.errors import InputError
from simspine.multiview.filtering import (
    FilterOptions,
    butterworth_filter,
    butterworth_sos,
    fill_gaps,
    filter_trajectories,
    finite_runs,
    hampel,
    padlen,
)
from simspine.trajectories import Trajectories

RATE = 100.0


def test_finite_runs_exact():
    assert finite_runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool)) == [(0, 2), (3, 4), (6, 9)]
    assert finite_runs(np.zeros(4, bool)) == []
    assert finite_runs(np.ones(3, bool)) == [(0, 3)]


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_padlen_is_scipys_default(order):
    """sosfiltfilt refuses a signal of padlen samples and accepts padlen + 1 (its own rule)."""
    sos = butterworth_sos(RATE, 6.0, order)
    pl = padlen(sos)
    assert pl == {1: 6, 2: 9, 3: 12, 4: 15, 5: 18}[order]
    signal.sosfiltfilt(sos, np.zeros(pl + 1))
    with pytest.raises(ValueError):
        signal.sosfiltfilt(sos, np.zeros(pl))


def test_butterworth_sos_checks():
    np.testing.assert_allclose(butterworth_sos(RATE, 6.0), signal.butter(4, 6.0, fs=RATE, output="sos"))
    assert butterworth_sos(RATE, 6.0, 1).shape == (1, 6)  # order 1 is allowed
    for rate in (0.0, -5.0, float("nan")):
        with pytest.raises(InputError, match=f"^sampling rate must be positive, got {rate}$"):
            butterworth_sos(rate, 6.0)
    for cut in (0.0, 50.0, 60.0, -1.0):
        with pytest.raises(InputError, match=rf"^cutoff {cut} Hz must lie between 0 and the Nyquist frequency 50.0 Hz$"):
            butterworth_sos(RATE, cut)
    with pytest.raises(InputError, match="^filter order must be at least 1, got 0$"):
        butterworth_sos(RATE, 6.0, 0)


def test_butterworth_filter_equals_sosfiltfilt_per_run():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3)).cumsum(0)
    x[20:22, 0] = np.nan  # column group of point 0: runs 0-20 (20 > 15: filtered) and 22-60
    x[16:, 1, :] = np.nan  # point 1: one run of 16 samples (= padlen + 1: filtered)
    x[:45, 1, 2] = np.nan  # ... except z, which has 15 samples left: 45-60, kept as is
    x[16:45, 1, 2] = np.nan
    x[45:, 1, 2] = np.arange(15.0)
    sos = butterworth_sos(RATE, 6.0, 4)
    y = butterworth_filter(x, RATE, 6.0, 4)
    assert y.shape == x.shape
    np.testing.assert_allclose(y[:20, 0], signal.sosfiltfilt(sos, x[:20, 0], axis=0), rtol=1e-12)
    np.testing.assert_allclose(y[22:, 0], signal.sosfiltfilt(sos, x[22:, 0], axis=0), rtol=1e-12)
    np.testing.assert_allclose(y[:16, 1, :2], signal.sosfiltfilt(sos, x[:16, 1, :2], axis=0), rtol=1e-12)
    assert np.array_equal(y[45:, 1, 2], np.arange(15.0))
    assert np.isnan(y[20:22, 0]).all() and np.isnan(y[16:, 1, :2]).all() and np.isnan(y[:45, 1, 2]).all()
    # a single column (T,) works and a run of exactly 16 samples is filtered
    np.testing.assert_allclose(butterworth_filter(x[:16, 1, 0], RATE), signal.sosfiltfilt(sos, x[:16, 1, 0]))
    # input not modified
    assert np.array_equal(np.isnan(x[:, 1, 2]), np.r_[np.ones(45, bool), np.zeros(15, bool)])


def test_bad_arrays_refused():
    for bad in (np.float64(1.0), np.zeros((0, 3))):
        with pytest.raises(InputError, match="expected an array with time on the first axis, got shape"):
            butterworth_filter(bad, RATE)
    with pytest.raises(InputError, match="^3 timestamps for 5 samples$"):
        fill_gaps(np.zeros(5), time=np.arange(3.0))
    with pytest.raises(InputError, match="^unknown gap interpolation method 'spline' "):
        fill_gaps(np.zeros(5), method="spline")
    with pytest.raises(InputError, match="^Hampel half window must be at least 1, got 0$"):
        hampel(np.zeros(5), half_window=0)
    assert hampel(np.r_[0.0, 0.0, 9.0, 0.0], half_window=1).tolist() == [False, False, True, False]


def test_fill_gaps_boundaries_and_methods():
    t = np.arange(40.0)
    x = np.sin(0.2 * t)
    y = x.copy()
    y[5:8] = np.nan  # 3: filled (= max_gap)
    y[12:16] = np.nan  # 4: > max_gap, kept NaN
    y[-2:] = np.nan  # trailing
    y[0] = np.nan  # leading
    out, filled = fill_gaps(y, max_gap=3)
    assert filled.tolist() == [i in (5, 6, 7) for i in range(40)]
    f = np.isfinite(y)
    from scipy.interpolate import CubicSpline, PchipInterpolator

    np.testing.assert_allclose(out[5:8], CubicSpline(t[f], y[f])(t[5:8]), rtol=1e-12)
    assert np.isnan(out[12:16]).all() and np.isnan(out[-2:]).all() and np.isnan(out[0])
    assert np.array_equal(out[f], y[f])
    out_p, _ = fill_gaps(y, max_gap=3, method="pchip")
    np.testing.assert_allclose(out_p[5:8], PchipInterpolator(t[f], y[f])(t[5:8]), rtol=1e-12)
    out_l, _ = fill_gaps(y, max_gap=3, method="linear")
    np.testing.assert_allclose(out_l[5:8], np.interp(t[5:8], t[f], y[f]), rtol=1e-12)
    # max_gap 0: nothing filled
    out0, filled0 = fill_gaps(y, max_gap=0)
    assert not filled0.any() and np.array_equal(np.isnan(out0), np.isnan(y))
    # three finite samples only: linear even when cubic is asked for
    z = np.array([0.0, np.nan, 1.0, np.nan, np.nan, 5.0])
    out3, filled3 = fill_gaps(z, max_gap=2)
    np.testing.assert_allclose(out3, [0.0, 0.5, 1.0, 7 / 3, 11 / 3, 5.0])
    assert filled3.tolist() == [False, True, False, True, True, False]
    # one finite sample: nothing to interpolate from
    one = np.array([np.nan, 1.0, np.nan, np.nan])
    assert np.array_equal(np.isnan(fill_gaps(one)[0]), np.isnan(one))


def test_fill_gaps_uses_timestamps_and_columns():
    # non-uniform time: linear interpolation in time, not in sample index
    t = np.array([0.0, 1.0, 1.5, 4.0])
    x = np.array([[0.0, 10.0], [np.nan, 10.0], [np.nan, np.nan], [8.0, 40.0]])
    out, filled = fill_gaps(x, max_gap=2, method="linear", time=t)
    np.testing.assert_allclose(out[:, 0], [0.0, 2.0, 3.0, 8.0])
    np.testing.assert_allclose(out[:, 1], [10.0, 10.0, 10.0 + 30.0 * 0.5 / 3.0, 40.0])
    assert filled.tolist() == [[False, False], [True, False], [True, True], [False, False]]


def _hampel_loop(x, k, n):
    """Plain-loop Hampel filter on a 1-D array (NaNs ignored in windows, never flagged)."""
    out = np.zeros(len(x), bool)
    for i in range(len(x)):
        w = x[max(0, i - k):i + k + 1]
        w = w[np.isfinite(w)]
        if not np.isfinite(x[i]) or w.size == 0:
            continue
        med = np.median(w)
        mad = 1.4826 * np.median(np.abs(w - med))
        dev = abs(x[i] - med)
        out[i] = dev > n * mad and dev > 1e-12 * max(1.0, abs(med))
    return out


@pytest.mark.parametrize("k,n", [(1, 3.0), (3, 3.0), (3, 2.0), (5, 1.5)])
def test_hampel_matches_a_plain_loop(k, n):
    rng = np.random.default_rng(k)
    x = rng.standard_t(2, size=(300, 2))
    x[rng.random((300, 2)) < 0.1] = np.nan
    m = hampel(x, half_window=k, n_sigmas=n)
    for j in range(2):
        assert np.array_equal(m[:, j], _hampel_loop(x[:, j], k, n))
    assert m.sum() > 5


def test_hampel_constant_window_and_tiny_steps():
    x = np.r_[np.full(5, 1000.0), 1000.5, np.full(5, 1000.0)]
    assert np.nonzero(hampel(x))[0].tolist() == [5]
    # a difference at rounding level of a large value is not a spike
    y = np.full(9, 1e6)
    y[4] += 1e-7
    assert not hampel(y).any()


def test_filter_trajectories_is_the_composition():
    T = 120
    t = np.arange(T) / RATE
    rng = np.random.default_rng(4)
    xyz = np.stack([np.sin(2 * np.pi * 0.7 * t + p) for p in range(6)], -1).reshape(T, 2, 3)
    xyz = xyz + 0.002 * rng.normal(size=xyz.shape)
    xyz[40, 0, 1] += 0.4  # spike in y only: the whole point is removed at frame 40
    xyz[70:73, 1, 2] = np.nan  # 3-frame gap in z only: the whole point is missing there
    xyz[90:105, 1] = np.nan  # 15-frame gap: not filled (default 10)
    conf = np.full((T, 2), 0.9)
    traj = Trajectories(t, ["a", "b"], xyz, conf)
    o = FilterOptions(hampel=True, filled_conf=0.25)
    out = filter_trajectories(traj, o)
    # independent composition of the steps
    ref = xyz.copy()
    ref[hampel(ref, 3, 3.0).any(-1)] = np.nan
    missing = ~np.isfinite(ref).all(-1)
    ref[missing] = np.nan
    ref, filled = fill_gaps(ref, 10, "cubic", t)
    ref = butterworth_filter(ref, RATE, 6.0, 4)
    np.testing.assert_allclose(out.xyz, ref, rtol=1e-12, equal_nan=True)
    assert missing[40, 0] and missing[70, 1]
    assert out.conf[40, 0] == 0.25 and (out.conf[70:73, 1] == 0.25).all()
    assert (out.conf[90:105, 1] == 0.0).all() and np.isnan(out.xyz[90:105, 1]).all()
    assert out.conf[10, 0] == 0.9 and out.conf[10, 1] == 0.9
    assert out.meta["filter"] == {"cutoff_hz": 6.0, "order_per_pass": 4, "zero_phase": True,
                                  "max_gap_frames": 10, "gap_method": "cubic", "hampel": True}
    assert out.names == ["a", "b"] and np.array_equal(out.time, t) and out.frame == traj.frame
    assert np.isnan(traj.xyz[70, 1, 2]) and np.isfinite(traj.xyz[70, 1, :2]).all()  # input untouched
    assert traj.xyz[40, 0, 1] > 0.3


def test_filter_trajectories_switches():
    T = 60
    t = np.arange(T) / RATE
    xyz = np.zeros((T, 1, 3))
    xyz[:, 0, 0] = np.sin(2 * np.pi * 20 * t)  # 20 Hz: removed by the 6 Hz low-pass
    xyz[30, 0, 0] = 50.0  # a spike: only removed with hampel=True
    xyz[10:12, 0] = np.nan
    traj = Trajectories(t, ["p"], xyz)
    raw = filter_trajectories(traj, FilterOptions(cutoff_hz=None, max_gap=0))
    np.testing.assert_array_equal(raw.xyz, xyz)
    assert raw.conf[10:12, 0].tolist() == [0.0, 0.0] and raw.conf[0, 0] == 1.0
    assert raw.meta["filter"]["cutoff_hz"] is None and raw.meta["filter"]["max_gap_frames"] == 0
    gaps = filter_trajectories(traj, FilterOptions(cutoff_hz=0, max_gap=2, gap_method="linear"))
    np.testing.assert_allclose(gaps.xyz[10:12, 0, 1], 0.0)
    np.testing.assert_allclose(gaps.xyz[10:12, 0, 0], np.interp([10, 11], [9, 12], xyz[[9, 12], 0, 0]))
    assert gaps.xyz[30, 0, 0] == 50.0
    assert gaps.conf[10:12, 0].tolist() == [0.5, 0.5]  # default filled_conf
    one = Trajectories(t[:1], ["p"], np.ones((1, 1, 3)))
    np.testing.assert_array_equal(filter_trajectories(one).xyz, np.ones((1, 1, 3)))


def test_fill_gaps_defaults_mask_and_column_order():
    x = np.arange(40.0)[:, None].repeat(2, 1)
    x[5:15, 1] = np.nan  # 10 samples: filled by default
    x[20:31, 1] = np.nan  # 11 samples: not
    x[3:30, 0] = np.nan  # column 0: only a gap too long to fill, which must not stop column 1
    out, filled = fill_gaps(x)
    assert filled.dtype == bool and filled.shape == x.shape
    assert filled[:, 1].tolist() == [5 <= i < 15 for i in range(40)] and not filled[:, 0].any()
    np.testing.assert_allclose(out[5:15, 1], np.arange(5.0, 15.0))
    # max_gap 1: a single missing sample is filled
    one, f1 = fill_gaps(np.array([0.0, np.nan, 2.0, np.nan, np.nan, 5.0]), max_gap=1, method="linear")
    np.testing.assert_allclose(one[:3], [0.0, 1.0, 2.0])
    assert f1.tolist() == [False, True, False, False, False, False]
    # max_gap 0 keeps the input's shape for the mask too
    _, f0 = fill_gaps(np.full((5, 2, 3), np.nan), max_gap=0)
    assert f0.shape == (5, 2, 3) and f0.dtype == bool and not f0.any()


def test_hampel_defaults_and_ends():
    rng = np.random.default_rng(9)
    x = rng.standard_t(2, size=200)
    assert np.array_equal(hampel(x), _hampel_loop(x, 3, 3.0))
    # the first window is truncated, not padded with zeros: 100 among 200s is a spike
    y = np.r_[100.0, np.full(7, 200.0)]
    assert hampel(y).tolist() == [True] + [False] * 7
    # a deviation of 1.5e-12 from a median of 0 in a constant window is above the rounding tolerance
    z = np.zeros(9)
    z[4] = 1.5e-12
    assert np.nonzero(hampel(z))[0].tolist() == [4]


def test_filter_trajectories_passes_its_options_on():
    T = 200
    t = np.arange(T) / RATE
    rng = np.random.default_rng(2)
    xyz = (np.sin(2 * np.pi * 1.0 * t)[:, None, None] + 0.05 * rng.standard_t(2, size=(T, 1, 3)))
    xyz[50, 0, 0] = np.nan  # one missing sample: filled with max_gap=1
    traj = Trajectories(t, ["p"], xyz)
    o = FilterOptions(hampel=True, hampel_half_window=2, hampel_sigmas=2.5, max_gap=1, order=2,
                      cutoff_hz=8.0, gap_method="linear")
    out = filter_trajectories(traj, o)
    ref = xyz.copy()
    ref[hampel(ref, 2, 2.5).any(-1)] = np.nan
    ref[~np.isfinite(ref).all(-1)] = np.nan
    ref, _ = fill_gaps(ref, 1, "linear", t)
    ref = butterworth_filter(ref, RATE, 8.0, 2)
    np.testing.assert_allclose(out.xyz, ref, rtol=1e-12, equal_nan=True)
    assert out.conf[50, 0] == 0.5


def test_filter_trajectories_fills_in_time_not_in_samples():
    # frames at uneven times (a dropped frame): a linear fill follows the timestamps
    t = np.array([0.0, 0.01, 0.02, 0.04, 0.05])
    xyz = np.zeros((5, 1, 3))
    xyz[:, 0, 0] = t * 100
    xyz[2, 0] = np.nan
    out = filter_trajectories(Trajectories(t, ["p"], xyz), FilterOptions(cutoff_hz=None, gap_method="linear"))
    np.testing.assert_allclose(out.xyz[2, 0, 0], 2.0)


def test_valid_parameter_edges_accepted():
    # any positive rate, any cutoff strictly between 0 and Nyquist
    for rate, cut in ((0.5, 0.1), (100.0, 0.5), (100.0, 40.0), (100.0, 49.9)):
        np.testing.assert_allclose(butterworth_sos(rate, cut, 2), signal.butter(2, cut, fs=rate, output="sos"))
    # exactly 4 finite samples: the cubic spline is used (3 would fall back to linear)
    t = np.arange(6.0)
    x = np.array([0.0, 1.0, np.nan, 27.0, np.nan, 125.0])
    from scipy.interpolate import CubicSpline

    f = np.isfinite(x)
    out, _ = fill_gaps(x, max_gap=2)
    np.testing.assert_allclose(out[[2, 4]], CubicSpline(t[f], x[f])(t[[2, 4]]), rtol=1e-12)
    assert abs(out[2] - 14.0) > 1.0  # not the linear value


def test_integer_inputs_are_filtered_as_floats():
    x = (100 * np.sin(np.arange(80) / 5.0)).astype(int)
    np.testing.assert_allclose(butterworth_filter(x, RATE), butterworth_filter(x.astype(float), RATE), rtol=1e-12)
    # a mask of 0/1/2 values is read as True/False
    assert finite_runs(np.array([2, 0, 3, 1, 0])) == [(0, 1), (2, 4)]
