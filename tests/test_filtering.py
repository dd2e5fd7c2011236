"""Filtering: zero phase, designed attenuation, NaN runs, gap filling, Hampel."""

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
    hampel,
    padlen,
)
from simspine.trajectories import Trajectories

RATE = 100.0


def _amp_phase(y, t, f):
    """Amplitude and phase of the f-Hz component of y by least squares on sin/cos."""
    A = np.c_[np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    s, c = np.linalg.lstsq(A, y, rcond=None)[0]
    return np.hypot(s, c), np.arctan2(c, s)


def test_zero_phase_sine_has_no_delay():
    t = np.arange(2000) / RATE
    x = np.sin(2 * np.pi * 1.5 * t + 0.3)
    y = butterworth_filter(x, RATE, cutoff_hz=6.0, order=4)
    mid = slice(200, -200)
    amp, ph = _amp_phase(y[mid], t[mid], 1.5)
    assert abs(ph - 0.3) < 1e-4  # no phase shift
    assert abs(amp - 1) < 1e-3
    # cross-correlation peaks at lag 0 at the resolution of a 10x finer check
    lags = np.arange(-5, 6)
    cc = [np.dot(np.roll(y, k)[mid], x[mid]) for k in lags]
    assert lags[int(np.argmax(cc))] == 0


@pytest.mark.parametrize("order", [2, 4])
def test_attenuation_at_cutoff_is_half(order):
    """Gain of the forward-backward filter = |H(f)|^2 of one pass: 0.5 at the cutoff (-3 dB per
    pass), and at other frequencies what scipy's frequency response of the designed sections says."""
    t = np.arange(5000) / RATE
    sos = butterworth_sos(RATE, 6.0, order)
    for f in (3.0, 6.0, 12.0):
        y = butterworth_filter(np.sin(2 * np.pi * f * t), RATE, cutoff_hz=6.0, order=order)
        amp, ph = _amp_phase(y[500:-500], t[500:-500], f)
        expected = np.abs(signal.sosfreqz(sos, worN=[f], fs=RATE)[1][0]) ** 2
        if f == 6.0:
            assert abs(expected - 0.5) < 1e-9
        assert abs(amp - expected) < 1e-3, (f, amp, expected)
        assert abs(np.sin(ph)) < 1e-3  # still no phase shift


def test_nan_runs_filtered_separately_short_runs_kept():
    t = np.arange(300) / RATE
    x = np.sin(2 * np.pi * 1.0 * t) + 0.1 * np.sin(2 * np.pi * 30 * t)
    x[100:150] = np.nan
    x[150:160] = 5.0  # a 10-sample run, shorter than the padding
    x[160:170] = np.nan
    y = butterworth_filter(np.c_[x, x], RATE, 6.0, 4)
    assert np.isnan(y[100:150]).all() and np.isnan(y[160:170]).all()
    assert padlen(butterworth_sos(RATE, 6.0, 4)) == 15
    assert np.array_equal(y[150:160, 0], x[150:160])
    clean = np.sin(2 * np.pi * 1.0 * t)
    assert np.abs(y[20:80, 0] - clean[20:80]).max() < 0.01  # the 30 Hz ripple is gone
    assert np.abs(y[190:280, 1] - clean[190:280]).max() < 0.01


def test_filter_bad_parameters():
    with pytest.raises(InputError, match="Nyquist"):
        butterworth_filter(np.zeros(100), 10.0, cutoff_hz=6.0)
    with pytest.raises(InputError, match="order"):
        butterworth_sos(100.0, 6.0, 0)


def test_fill_gaps_cubic_exact_on_cubic_and_max_gap():
    t = np.linspace(0, 1, 101)
    x = 1 + t - 2 * t**2 + 3 * t**3
    y = x.copy()
    y[10:15] = np.nan  # 5: filled
    y[40:60] = np.nan  # 20: too long
    y[:3] = np.nan  # leading: not extrapolated
    out, filled = fill_gaps(y, max_gap=10)
    assert np.allclose(out[10:15], x[10:15], atol=1e-12)
    assert filled[10:15].all() and filled.sum() == 5
    assert np.isnan(out[40:60]).all() and np.isnan(out[:3]).all()
    lin, _ = fill_gaps(y, max_gap=10, method="linear")
    assert np.allclose(lin[10:15], np.interp(np.arange(10, 15), [9, 15], [x[9], x[15]]))
    pch, _ = fill_gaps(y, max_gap=10, method="pchip")
    assert np.allclose(pch[10:15], x[10:15], atol=1e-3)
    with pytest.raises(InputError, match="method"):
        fill_gaps(y, method="spline")


def test_hampel_finds_spikes_only():
    rng = np.random.default_rng(0)
    t = np.arange(500) / RATE
    x = np.sin(2 * np.pi * 0.5 * t)[:, None] + 0.001 * rng.normal(size=(500, 3))
    spikes = [50, 51, 200, 333]
    x[spikes, 1] += 0.5
    m = hampel(x, half_window=3, n_sigmas=3)
    assert m[spikes, 1].all()
    assert m.sum() <= len(spikes) + 3  # at most a few false alarms among 1500 samples


def test_filter_trajectories_pipeline():
    T = 400
    t = np.arange(T) / RATE
    truth = np.stack([np.sin(2 * np.pi * 0.8 * t), np.cos(2 * np.pi * 0.5 * t), 0.5 + 0 * t], -1)
    xyz = np.repeat(truth[:, None], 2, 1).copy()
    xyz[100:105, 0] = np.nan
    xyz[300, 1, 2] += 0.5  # spike
    traj = Trajectories(t, ["a", "b"], xyz)
    out = filter_trajectories(traj, FilterOptions(hampel=True))
    assert np.isfinite(out.xyz).all()
    mid = slice(30, -30)  # away from the filter's end effects
    assert np.abs(out.xyz[mid, 0] - truth[mid]).max() < 1e-3
    assert np.abs(out.xyz[mid, 1] - truth[mid]).max() < 1e-3
    assert np.all(out.conf[100:105, 0] == 0.5) and out.conf[300, 1] == 0.5 and out.conf[0, 0] == 1
    assert out.meta["filter"]["cutoff_hz"] == 6.0
