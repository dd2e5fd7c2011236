"""Filtering of 3D trajectories: spike removal, gap interpolation, zero-phase low-pass.

All functions take arrays whose first axis is time, ``(T, ...)`` (e.g. (T, K, 3) positions in
metres), with NaN where a value is missing, and work column by column along time (columns with
the same missing-data pattern are processed together).

Defaults (:class:`FilterOptions`):

* Butterworth low-pass of order 4 with a 6 Hz cutoff, run forwards and backwards
  (``scipy.signal.sosfiltfilt``): zero phase, and the two passes square the magnitude response,
  so the gain at the cutoff is 0.5 (-6 dB; each pass is -3 dB there) and the roll-off is that of
  an order-8 filter. 6 Hz keeps everyday human movement (walking, sitting, gestures) and removes
  detector jitter; raise it for fast sports movements.
* Only finite runs longer than the filter's padding (``3 * (2 * n_sections + 1)`` samples: 15 for
  order 4) are filtered; shorter runs are left as they are (too short to filter without edge
  artefacts).
* Gaps of up to 10 frames inside a trajectory are interpolated (cubic spline through the finite
  samples, as Pose2Sim does); longer gaps and missing ends stay NaN.
* Hampel spike removal is off by default; when on, a sample further than 3 scaled MADs from the
  median of a ±3-sample window is treated as missing (and then interpolated like a gap).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import interpolate, signal

from simspine.errors import InputError
from simspine.trajectories import Trajectories


@dataclass
class FilterOptions:
    """Parameters of :func:`filter_trajectories` (see the module docstring for the defaults).

    Attributes:
        cutoff_hz: low-pass cutoff (Hz); ``None`` or 0 disables the low-pass.
        order: Butterworth order of each pass.
        max_gap: longest gap (frames) that is interpolated; 0 disables gap filling.
        gap_method: ``"cubic"``, ``"pchip"`` or ``"linear"``.
        hampel: run Hampel spike removal first.
        hampel_half_window: half-width of the Hampel window (samples).
        hampel_sigmas: threshold in scaled MADs.
        filled_conf: confidence given to interpolated samples (multiplies IK weights).
    """

    cutoff_hz: float | None = 6.0
    order: int = 4
    max_gap: int = 10
    gap_method: str = "cubic"
    hampel: bool = False
    hampel_half_window: int = 3
    hampel_sigmas: float = 3.0
    filled_conf: float = 0.5


def _columns(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    x = np.asarray(x, dtype=float)
    if x.ndim < 1 or x.shape[0] < 1:
        raise InputError(None, f"expected an array with time on the first axis, got shape {x.shape}")
    return x.reshape(x.shape[0], -1), x.shape


def finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the runs of True in a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def butterworth_sos(rate_hz: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Second-order sections of a digital Butterworth low-pass (one pass)."""
    if not rate_hz > 0:
        raise InputError(None, f"sampling rate must be positive, got {rate_hz}")
    if not 0 < cutoff_hz < rate_hz / 2:
        raise InputError(None, f"cutoff {cutoff_hz} Hz must lie between 0 and the Nyquist frequency {rate_hz / 2} Hz")
    if order < 1:
        raise InputError(None, f"filter order must be at least 1, got {order}")
    return signal.butter(order, cutoff_hz, btype="low", fs=rate_hz, output="sos")


def padlen(sos: np.ndarray) -> int:
    """Samples of padding ``sosfiltfilt`` uses by default; runs must be longer than this."""
    return 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))


def butterworth_filter(x: np.ndarray, rate_hz: float, cutoff_hz: float = 6.0, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass of ``x`` (T, ...) along time.

    Each finite run longer than :func:`padlen` is filtered on its own (forward-backward); shorter
    runs and NaNs are returned unchanged. Gain at ``cutoff_hz`` is 0.5 (-3 dB per pass).
    """
    cols, shape = _columns(x)
    out = cols.copy()
    sos = butterworth_sos(rate_hz, cutoff_hz, order)
    pl = padlen(sos)
    finite = np.isfinite(cols)
    # columns sharing a missing-data pattern are filtered together (usually x, y, z of a point)
    patterns: dict[bytes, list[int]] = {}
    for j in range(cols.shape[1]):
        patterns.setdefault(np.packbits(finite[:, j]).tobytes(), []).append(j)
    for idx in patterns.values():
        for a, b in finite_runs(finite[:, idx[0]]):
            if b - a > pl:
                out[a:b, idx] = signal.sosfiltfilt(sos, cols[a:b, idx], axis=0)
    return out.reshape(shape)


def fill_gaps(x: np.ndarray, max_gap: int = 10, method: str = "cubic", time: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate interior gaps of at most ``max_gap`` samples in ``x`` (T, ...).

    Returns (filled array, mask (T, ...) of the samples that were filled). The interpolant goes
    through all finite samples of the column (``"cubic"``: not-a-knot cubic spline; ``"pchip"``:
    shape-preserving; ``"linear"``); gaps longer than ``max_gap`` and leading/trailing gaps stay NaN.
    """
    if method not in ("cubic", "pchip", "linear"):
        raise InputError(None, f"unknown gap interpolation method {method!r} (use cubic, pchip or linear)")
    cols, shape = _columns(x)
    T = cols.shape[0]
    t = np.arange(T, dtype=float) if time is None else np.asarray(time, dtype=float)
    if t.shape != (T,):
        raise InputError(None, f"{t.shape[0]} timestamps for {T} samples")
    out = cols.copy()
    filled = np.zeros(cols.shape, dtype=bool)
    if max_gap <= 0:
        return out.reshape(shape), filled.reshape(shape)
    finite = np.isfinite(cols)
    for j in np.nonzero((~finite).any(0) & (finite.sum(0) >= 2))[0]:
        f = finite[:, j]
        gaps = [(a, b) for a, b in finite_runs(~f) if a > 0 and b < T and b - a <= max_gap]
        if not gaps:
            continue
        todo = np.concatenate([np.arange(a, b) for a, b in gaps])
        tf, yf = t[f], cols[f, j]
        if method == "linear" or len(tf) < 4:
            out[todo, j] = np.interp(t[todo], tf, yf)
        elif method == "pchip":
            out[todo, j] = interpolate.PchipInterpolator(tf, yf)(t[todo])
        else:
            out[todo, j] = interpolate.CubicSpline(tf, yf)(t[todo])
        filled[todo, j] = True
    return out.reshape(shape), filled.reshape(shape)


def hampel(x: np.ndarray, half_window: int = 3, n_sigmas: float = 3.0) -> np.ndarray:
    """Mask (T, ...) of Hampel outliers: samples further than ``n_sigmas`` scaled MADs
    (1.4826 × median absolute deviation) from the median of the ``±half_window`` window.

    NaNs are ignored inside windows; windows are truncated at the ends. Vectorised over samples
    and columns (a sliding-window view, no loop over samples).
    """
    cols, shape = _columns(x)
    k = int(half_window)
    if k < 1:
        raise InputError(None, f"Hampel half window must be at least 1, got {half_window}")
    padded = np.pad(cols, ((k, k), (0, 0)), constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1, axis=0)  # (T, cols, 2k+1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        med = np.nanmedian(win, axis=-1)
        mad = 1.4826 * np.nanmedian(np.abs(win - med[..., None]), axis=-1)
    dev = np.abs(cols - med)
    # where the window is constant (MAD 0) any deviation beyond rounding is a spike
    out = (dev > n_sigmas * mad) & (dev > 1e-12 * np.maximum(1.0, np.abs(med)))
    out &= np.isfinite(cols)
    return out.reshape(shape)


def filter_trajectories(traj: Trajectories, options: FilterOptions | None = None) -> Trajectories:
    """Hampel (optional) → gap filling → zero-phase Butterworth on every point of ``traj``.

    A point is treated as one unit: a spike in any coordinate removes the whole point at that
    sample. Interpolated samples get confidence ``filled_conf``; removed spikes and unfilled gaps
    get 0. The frame rate comes from ``traj.time``.
    """
    o = options or FilterOptions()
    xyz = traj.xyz.copy()
    conf = traj.conf.copy()
    if o.hampel:
        spikes = hampel(xyz, o.hampel_half_window, o.hampel_sigmas).any(-1)
        xyz[spikes] = np.nan
    missing = ~np.isfinite(xyz).all(-1)
    xyz[missing] = np.nan
    if o.max_gap > 0:
        xyz, filled = fill_gaps(xyz, o.max_gap, o.gap_method, traj.time)
        filled = filled.any(-1) & missing
        conf = np.where(filled, o.filled_conf, conf)
    conf = np.where(np.isfinite(xyz).all(-1), conf, 0.0)
    if o.cutoff_hz and traj.n_frames > 1:
        xyz = butterworth_filter(xyz, traj.rate, o.cutoff_hz, o.order)
    meta = dict(traj.meta)
    meta["filter"] = {"cutoff_hz": o.cutoff_hz, "order_per_pass": o.order, "zero_phase": True,
                      "max_gap_frames": o.max_gap, "gap_method": o.gap_method, "hampel": o.hampel}
    return Trajectories(traj.time.copy(), list(traj.names), xyz, conf, traj.frame, meta)
