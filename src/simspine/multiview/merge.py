"""Merge pseudo-3D spine keypoints with trusted 3D body markers (SimSpine paper §3.1 (2)).

The triangulated SpineTrack-37 keypoints ("pseudo" 3D: detector-based, noisier on the spine)
are combined with trusted body markers (Human3.6M's motion-capture joints, or any TRC) into one
set of trajectories named after the model's markers (SpineTrack-37 names, in SpineTrack-37 order):

1. **Correspondence table** — trusted marker name → SpineTrack-37 name
   (:data:`simspine.skeletons.H36M_TO_SPINETRACK` for Human3.6M joints, same names for a TRC
   already in SpineTrack names, or a table given by the caller).
2. **Resampling** — the pseudo keypoints are linearly interpolated onto the trusted markers'
   timestamps (never across a gap longer than the fill horizon; no extrapolation).
3. **Combination** — a keypoint with a trusted marker takes the trusted position; where the
   trusted marker is missing it falls back to the pseudo keypoint; other keypoints come from
   the pseudo set.
4. **Short-horizon filling** — remaining interior gaps up to ``fill_horizon_s`` are interpolated
   and missing ends are held for at most that long.
5. **Confidence** — trusted samples get ``trusted_conf`` × their own confidence, pseudo samples
   ``pseudo_conf`` × theirs, filled samples ``filled_conf`` × the lower of the two; carried in
   :attr:`Trajectories.conf`, which IK multiplies into its marker weights.

Both inputs must be in the same world frame and in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simspine.errors import InputError
from simspine.multiview.filtering import fill_gaps, finite_runs
from simspine.skeletons import H36M_TO_SPINETRACK, h36m17, h36m32, model_marker_names, spinetrack37
from simspine.trajectories import Trajectories


@dataclass
class MergeOptions:
    """Parameters of :func:`merge_markers`.

    Attributes:
        trusted_conf: confidence of trusted markers (multiplied by their own confidence).
        pseudo_conf: confidence of pseudo-3D keypoints (multiplied by theirs); lower than the
            trusted one so that IK follows the motion-capture markers where both exist.
        filled_conf: factor on the confidence of samples filled over short gaps.
        fill_horizon_s: longest gap (seconds) that is filled, and the longest time a missing end
            is held at its last known position.
        time_offset_s: added to the pseudo timestamps to put them on the trusted clock.
        fallback_to_pseudo: where a trusted marker is missing, use the pseudo keypoint.
    """

    trusted_conf: float = 1.0
    pseudo_conf: float = 0.5
    filled_conf: float = 0.5
    fill_horizon_s: float = 0.1
    time_offset_s: float = 0.0
    fallback_to_pseudo: bool = True


def same_frame(a: str, b: str) -> bool:
    """Whether two frame descriptions name the same world frame: equal, or the same frame name
    before any parenthesised detail (``"opensim-ground (Y up)"`` and
    ``"opensim-ground (Y up, metres)"`` are the same frame)."""
    def key(f: str) -> str:
        return f.split("(")[0].strip().lower()

    return a == b or (key(a) != "" and key(a) == key(b))


def default_correspondence(trusted_names, target_names=None) -> dict[str, str]:
    """Trusted name → SpineTrack-37 name: Human3.6M's table when the trusted set has Human3.6M
    joint names, otherwise the names the two sets share."""
    target = list(target_names or spinetrack37().names)
    names = set(trusted_names)
    if names <= set(h36m32().names) and names & set(H36M_TO_SPINETRACK):
        # Human3.6M joints: its Hip/Spine/Thorax/Head are not the model's points (paper §3.1)
        return {k: v for k, v in H36M_TO_SPINETRACK.items() if k in names and v in target}
    return {n: n for n in trusted_names if n in target}


def h36m_trajectories(joints: np.ndarray, rate_hz: float = 50.0, units: str = "mm",
                      frame: str = "human3.6m-world (Z up)", start_s: float = 0.0) -> Trajectories:
    """Human3.6M joints (T, 32 or 17, 3) as :class:`Trajectories` named after the joints.

    ``units`` is ``"mm"`` (the raw ``D3_Positions`` files) or ``"m"`` (the common preprocessed
    npz); the result is in metres.
    """
    joints = np.asarray(joints, dtype=float)
    if joints.ndim != 3 or joints.shape[2] != 3 or joints.shape[1] not in (17, 32):
        raise InputError(None, f"Human3.6M joints must be (T, 32 or 17, 3), got {joints.shape}")
    if units not in ("mm", "m"):
        raise InputError(None, f"units must be 'mm' or 'm', got {units!r}")
    sk = h36m32() if joints.shape[1] == 32 else h36m17()
    scale = 1e-3 if units == "mm" else 1.0
    time = start_s + np.arange(joints.shape[0]) / rate_hz
    return Trajectories(time, list(sk.names), joints * scale, frame=frame, meta={"source": "Human3.6M"})


def resample(traj: Trajectories, time: np.ndarray, max_gap_s: float = np.inf, time_offset_s: float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T', M, 3) and confidences (T', M) of ``traj`` at ``time`` (T',) by linear
    interpolation in time, per point, between finite samples no more than ``max_gap_s`` apart.

    Times outside the point's finite samples (no extrapolation) or inside a longer gap are NaN
    (confidence 0). ``time_offset_s`` is added to ``traj.time`` first.
    """
    time = np.asarray(time, dtype=float)
    src_t = traj.time + time_offset_s
    if np.any(np.diff(src_t) <= 0):
        raise InputError(None, "timestamps must increase strictly to resample")
    T2, M = len(time), len(traj.names)
    xyz = np.full((T2, M, 3), np.nan)
    conf = np.zeros((T2, M))
    finite = np.isfinite(traj.xyz).all(-1)
    for m in range(M):
        f = finite[:, m]
        if f.sum() == 0:
            continue
        tf = src_t[f]
        # index of the finite sample at or before each target time
        i = np.searchsorted(tf, time, side="right") - 1
        inside = (i >= 0) & (i < len(tf))
        exact = inside & (tf[np.clip(i, 0, len(tf) - 1)] == time)
        j = np.clip(i + 1, 0, len(tf) - 1)
        between = inside & (i + 1 < len(tf)) & ((tf[j] - tf[np.clip(i, 0, None)]) <= max_gap_s + 1e-9)
        ok = exact | between
        if not ok.any():
            continue
        for d in range(3):
            xyz[ok, m, d] = np.interp(time[ok], tf, traj.xyz[f, m, d])
        c = traj.conf[f, m]
        conf[ok, m] = np.interp(time[ok], tf, c)
    return xyz, conf


def _hold_ends(xyz: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold missing leading/trailing samples at the nearest known value for up to ``horizon``."""
    out = xyz.copy()
    held = np.zeros(xyz.shape[:2], dtype=bool)
    finite = np.isfinite(xyz).all(-1)
    T = xyz.shape[0]
    for m in np.nonzero((~finite).any(0) & finite.any(0))[0]:
        runs = finite_runs(finite[:, m])
        first, last = runs[0][0], runs[-1][1] - 1
        a = max(0, first - horizon)
        out[a:first, m] = xyz[first, m]
        held[a:first, m] = True
        b = min(T, last + 1 + horizon)
        out[last + 1:b, m] = xyz[last, m]
        held[last + 1:b, m] = True
    return out, held


def merge_markers(pseudo: Trajectories, trusted: Trajectories, correspondence: dict[str, str] | None = None,
                  options: MergeOptions | None = None, names=None) -> Trajectories:
    """Merge ``pseudo`` keypoints (SpineTrack-37 names) with ``trusted`` markers onto the
    trusted timestamps; see the module docstring. Returns trajectories named ``names``
    (default: the 37 SpineTrack-37 names, in order) in the shared world frame.
    """
    o = options or MergeOptions()
    names = list(names or spinetrack37().names)
    if not same_frame(pseudo.frame, trusted.frame):
        raise InputError(None, f"pseudo keypoints are in frame {pseudo.frame!r} but trusted markers in "
                               f"{trusted.frame!r}: convert one of them first (simspine.frames)")
    table = default_correspondence(trusted.names, names) if correspondence is None else dict(correspondence)
    unknown = [k for k in table if k not in trusted.names]
    if unknown:
        raise InputError(None, f"correspondence names trusted markers that are not there: {', '.join(unknown)}")
    bad = [v for v in table.values() if v not in names]
    if bad:
        raise InputError(None, f"correspondence targets unknown keypoint names: {', '.join(bad)}")
    if not table:
        raise InputError(None, "no trusted marker corresponds to a model marker name; pass a correspondence table")
    if trusted.n_frames < 1:
        raise InputError(None, "trusted markers have no frames")
    time = trusted.time.copy()
    rate = trusted.rate if trusted.n_frames > 1 else 1.0
    horizon = int(round(o.fill_horizon_s * rate)) if np.isfinite(rate) else 0

    T, M = len(time), len(names)
    xyz = np.full((T, M, 3), np.nan)
    conf = np.zeros((T, M))
    source = np.zeros((T, M), dtype=np.int8)  # 0 none, 1 trusted, 2 pseudo, 3 filled
    # pseudo keypoints on the trusted clock
    usable = set(model_marker_names(pseudo.names, pseudo.meta.get("skeleton", "SpineTrack-37")))
    common = [n for n in names if n in pseudo.names and (n in usable or n not in spinetrack37().names)]
    if common and pseudo.n_frames > 0:
        sub = pseudo.select(common)
        p_xyz, p_conf = resample(sub, time, max_gap_s=max(o.fill_horizon_s, 1.5 / pseudo.rate
                                                          if pseudo.n_frames > 1 else 0.0),
                                 time_offset_s=o.time_offset_s)
        idx = [names.index(n) for n in common]
        xyz[:, idx] = p_xyz
        conf[:, idx] = o.pseudo_conf * p_conf
        source[:, idx] = np.where(np.isfinite(p_xyz).all(-1), 2, 0)
    # trusted markers on top
    for src, dst in table.items():
        k = names.index(dst)
        t_xyz = trusted.point(src)
        ok = np.isfinite(t_xyz).all(-1)
        if not o.fallback_to_pseudo:
            xyz[:, k] = np.nan
            conf[:, k] = 0.0
            source[:, k] = 0
        xyz[ok, k] = t_xyz[ok]
        conf[ok, k] = o.trusted_conf * trusted.conf[ok, trusted.names.index(src)]
        source[ok, k] = 1
    # short-horizon filling
    missing = ~np.isfinite(xyz).all(-1)
    if horizon > 0 and missing.any():
        before = conf.copy()
        xyz[missing] = np.nan
        xyz, filled = fill_gaps(xyz, horizon, "linear", time)
        xyz, held = _hold_ends(xyz, horizon)
        new = (filled.any(-1) | held) & missing
        # the filled sample's confidence: the lower of the two samples around the gap, scaled
        lo = _neighbour_min(before, missing)
        conf[new] = o.filled_conf * lo[new]
        source[new] = 3
    conf = np.where(np.isfinite(xyz).all(-1), conf, 0.0)
    meta = {"merge": {"correspondence": table, "trusted_conf": o.trusted_conf, "pseudo_conf": o.pseudo_conf,
                      "filled_conf": o.filled_conf, "fill_horizon_s": o.fill_horizon_s,
                      "source_codes": "0 missing, 1 trusted, 2 pseudo, 3 filled"},
            "sample_source": source}
    return Trajectories(time, names, xyz, conf, trusted.frame, meta)


def _neighbour_min(conf: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """For each missing sample, the lower confidence of the nearest known samples before/after it
    (the one that exists at the ends)."""
    T, M = conf.shape
    idx = np.arange(T)[:, None]
    known = ~missing
    prev_i = np.maximum.accumulate(np.where(known, idx, -1), axis=0)
    next_i = np.minimum.accumulate(np.where(known, idx, T)[::-1], axis=0)[::-1]
    cols = np.arange(M)[None, :].repeat(T, 0)
    prev_c = np.where(prev_i >= 0, conf[np.clip(prev_i, 0, T - 1), cols], np.inf)
    next_c = np.where(next_i < T, conf[np.clip(next_i, 0, T - 1), cols], np.inf)
    out = np.minimum(prev_c, next_c)
    return np.where(np.isfinite(out), out, 0.0)
