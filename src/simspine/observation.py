"""Observed, filled or inferred: where each output keypoint of ``annotate`` comes from, per frame.

The model's keypoints (SpineTrack-37, from forward kinematics) are finite in every frame the IK
solved, whether or not the data said anything about them. This module says, per frame and
keypoint, which it was (pure functions on arrays; :mod:`simspine.annotate` writes the results):

======  ============  ============================================================================
code    status        meaning
======  ============  ============================================================================
0       none          not estimated: the frame has too few markers for IK (NaN in the outputs
                      unless ``--fill-unobserved``)
1       observed      the keypoint's model marker had data that frame: triangulated from the 2D,
                      or a trusted (motion-capture) marker
2       filled        the marker was interpolated over a short gap (filter ``--max-gap``, merge
                      fill horizon) or held at a missing end: data nearby, not that frame
3       inferred      no marker data: the keypoint comes from the model (IK of the other markers,
                      the joint couplers and priors) only
======  ============  ============================================================================

A keypoint whose model marker is absent from the markers (e.g. spine points of a detector that
has none) is inferred in every estimated frame.

**Too few markers for IK.** The pelvis and trunk place the root of every chain; IK needs at least
3 markers on them (:data:`TRUNK_MARKERS`, the markers the model puts on the pelvis, lumbar
vertebrae and torso). A frame with fewer than :data:`MIN_TRUNK_MARKERS` of them observed or filled
is *not estimated*: the solver's pose there is carried over from the neighbouring frames by the
temporal prior, not measured.

**Regions** are the spine regions of ``spinetrack37.json`` (``regions_for_3d_metrics``: lumbar,
thoracic, cervical). A region is *observed in a frame* when at least half of its keypoints are
observed; its status that frame is observed, else filled when at least half are observed or
filled, else inferred (none in frames not estimated).
"""

from __future__ import annotations

import io

import numpy as np

from simspine.skeletons import spinetrack37
from simspine.trajectories import Trajectories

NONE, OBSERVED, FILLED, INFERRED = 0, 1, 2, 3
STATUS_NAMES = {NONE: "none", OBSERVED: "observed", FILLED: "filled", INFERRED: "inferred"}
LEGEND = {
    str(NONE): "none: frame not estimated (too few pelvis/trunk markers for IK); NaN unless --fill-unobserved",
    str(OBSERVED): "observed: the keypoint's marker was triangulated (or a trusted marker) in this frame",
    str(FILLED): "filled: the marker was interpolated over a short gap (or held at a missing end)",
    str(INFERRED): "inferred: no marker data; the position comes from the model (IK of the other markers) only",
}
#: Markers the model places on the pelvis, the lumbar vertebrae and the torso (SpineTrack-37 names).
TRUNK_MARKERS = ("LShoulder", "RShoulder", "LHip", "RHip", "Neck", "Hip", "Spine_01", "Spine_02", "Spine_03",
                 "Spine_04", "Spine_05", "LLatissimus", "RLatissimus", "LClavicle", "RClavicle", "Neck_02", "Neck_03")
#: Fewest observed or filled trunk markers of a frame that IK is run on.
MIN_TRUNK_MARKERS = 3
#: A spine region observed in fewer frames than this share gets a warning.
WARN_BELOW = 0.5
REGIONS = ("lumbar", "thoracic", "cervical")


def regions() -> dict[str, list[int]]:
    """Spine region -> SpineTrack-37 keypoint indices (``regions_for_3d_metrics``)."""
    from simspine.skeletons import _load_json

    table = _load_json("spinetrack37.json")["regions_for_3d_metrics"]
    return {r: list(table[r]) for r in REGIONS}


def _nearest(src_time: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest ``src_time`` sample for each ``time`` and whether it is within half a
    sample period."""
    if len(src_time) == 0:
        return np.zeros(len(time), int), np.zeros(len(time), bool)
    i = np.clip(np.searchsorted(src_time, time), 0, len(src_time) - 1)
    j = np.clip(i - 1, 0, len(src_time) - 1)
    i = np.where(np.abs(src_time[j] - time) < np.abs(src_time[i] - time), j, i)
    dt = np.median(np.diff(src_time)) if len(src_time) > 1 else np.inf
    return i, np.abs(src_time[i] - time) <= 0.5 * dt + 1e-9


def marker_status(markers: Trajectories, triangulated: Trajectories | None = None) -> np.ndarray:
    """(T, M) codes (observed, filled, inferred) of ``markers`` (the merged model markers).

    A marker with no position (or confidence 0) is inferred. Otherwise the merge stage's
    ``meta['sample_source']`` decides (1 trusted: observed; 3 filled: filled; 2 pseudo: observed
    when the triangulation had the keypoint at that time, else filled by the filter); without it
    (no trusted markers) a finite marker is observed where ``triangulated`` has the keypoint in the
    nearest frame and filled elsewhere. Without ``triangulated`` every finite pseudo sample counts
    as observed.
    """
    have = np.isfinite(markers.xyz).all(-1) & (markers.conf > 0)
    T, M = have.shape
    tri_ok = np.ones((T, M), bool)
    if triangulated is not None:
        idx, close = _nearest(triangulated.time, markers.time)
        fin = np.isfinite(triangulated.xyz).all(-1)
        for m, n in enumerate(markers.names):
            tri_ok[:, m] = close & fin[idx, triangulated.names.index(n)] if n in triangulated.names else False
    src = markers.meta.get("sample_source")
    out = np.full((T, M), INFERRED, np.int8)
    if src is None:
        out[have & tri_ok] = OBSERVED
        out[have & ~tri_ok] = FILLED
        return out
    src = np.asarray(src)
    out[have & (src == 1)] = OBSERVED
    out[have & (src == 2) & tri_ok] = OBSERVED
    out[have & (src == 2) & ~tri_ok] = FILLED
    out[have & (src == 3)] = FILLED
    return out


def frames_estimated(status: np.ndarray, names, min_trunk: int = MIN_TRUNK_MARKERS) -> np.ndarray:
    """(T,) whether each frame has at least ``min_trunk`` observed or filled :data:`TRUNK_MARKERS`
    in ``status`` (T, M) of markers ``names``."""
    cols = [i for i, n in enumerate(names) if n in TRUNK_MARKERS]
    s = np.asarray(status)[:, cols]
    return ((s == OBSERVED) | (s == FILLED)).sum(1) >= min_trunk


def keypoint_status(status: np.ndarray, names, estimated: np.ndarray | None = None) -> np.ndarray:
    """(T, 37) codes of the SpineTrack-37 keypoints from the (T, M) marker ``status`` of markers
    ``names``: a keypoint takes its marker's code, inferred without a marker, none in frames that
    are not ``estimated``."""
    status = np.asarray(status)
    T = status.shape[0]
    out = np.full((T, 37), INFERRED, np.int8)
    index = {n: i for i, n in enumerate(names)}
    for k, n in enumerate(spinetrack37().names):
        if n in index:
            out[:, k] = status[:, index[n]]
    if estimated is not None:
        out[~np.asarray(estimated, bool)] = NONE
    return out


def region_status(kp_status: np.ndarray) -> np.ndarray:
    """(T, 3) codes of the spine regions (:data:`REGIONS` order) from (T, 37) keypoint codes
    (see the module docstring)."""
    kp_status = np.asarray(kp_status)
    out = np.empty((kp_status.shape[0], len(REGIONS)), np.int8)
    for j, idx in enumerate(regions().values()):
        s = kp_status[:, idx]
        obs = (s == OBSERVED).mean(1)
        data = ((s == OBSERVED) | (s == FILLED)).mean(1)
        code = np.where(obs >= 0.5, OBSERVED, np.where(data >= 0.5, FILLED, INFERRED))
        out[:, j] = np.where((s == NONE).all(1), NONE, code)
    return out


def coverage(kp_status: np.ndarray, estimated: np.ndarray | None = None, warn_below: float = WARN_BELOW) -> dict:
    """Shares of frames per status for each region and keypoint, and the warnings.

    Returns ``{"frames", "frames_estimated_share", "regions": {region: {status: share}},
    "keypoints": {name: {status: share}}, "warnings": [...]}``; shares are of all frames. A
    warning is given for a region observed in under ``warn_below`` of the frames, and when some
    frames were not ``estimated`` (default: frames whose codes are not all none).
    """
    kp_status = np.asarray(kp_status)
    T = kp_status.shape[0]
    reg = region_status(kp_status)

    def shares(col):
        return {STATUS_NAMES[c]: float((col == c).mean()) if T else 0.0 for c in (OBSERVED, FILLED, INFERRED, NONE)}

    if estimated is None:
        estimated = (kp_status != NONE).any(1)
    est = float(np.mean(estimated)) if T else 0.0
    out = {"frames": int(T), "frames_estimated_share": est,
           "regions": {r: shares(reg[:, j]) for j, r in enumerate(REGIONS)},
           "keypoints": {n: shares(kp_status[:, k]) for k, n in enumerate(spinetrack37().names)},
           "rule": f"a region is observed in a frame when at least half of its keypoints are; a frame is estimated "
                   f"when at least {MIN_TRUNK_MARKERS} pelvis/trunk markers are observed or filled",
           "warnings": []}
    if T and est < 1.0:
        out["warnings"].append(f"{100 * (1 - est):.0f}% of frames ({int(round((1 - est) * T))} of {T}) had fewer than "
                               f"{MIN_TRUNK_MARKERS} pelvis/trunk markers: no pose is estimated there (NaN)")
    for r in REGIONS:
        obs = out["regions"][r]["observed"]
        if T and obs < warn_below:
            out["warnings"].append(f"the {r} spine was observed in {100 * obs:.0f}% of frames: its motion is mostly "
                                   "inferred by the model")
    return out


def mask_frames(values: np.ndarray, estimated: np.ndarray) -> np.ndarray:
    """A copy of ``values`` (T, ...) with NaN in the frames that are not ``estimated``."""
    out = np.array(values, dtype=float, copy=True)
    out[~np.asarray(estimated, bool)] = np.nan
    return out


def status_csv(time: np.ndarray, kp_status: np.ndarray, estimated: np.ndarray) -> str:
    """``keypoints37_status.csv``: time, whether the frame was estimated (1/0), the status word of
    each spine region, then one column per SpineTrack-37 keypoint (observed / filled / inferred /
    none)."""
    names = list(spinetrack37().names)
    reg = region_status(kp_status)
    buf = io.StringIO()
    buf.write("# per frame: where each SpineTrack-37 keypoint of the model comes from; "
              + "; ".join(LEGEND[str(c)] for c in (OBSERVED, FILLED, INFERRED, NONE)) + "\n")
    buf.write(",".join(["time", "frame_estimated"] + [f"{r}_status" for r in REGIONS] + names) + "\n")
    words = np.array([STATUS_NAMES[c] for c in range(4)])
    for f in range(len(time)):
        buf.write(f"{time[f]:.6f},{int(bool(estimated[f]))}," + ",".join(words[reg[f]]) + ","
                  + ",".join(words[kp_status[f]]) + "\n")
    return buf.getvalue()


def trc_note(cov: dict, fill_unobserved: bool) -> str:
    """One line for a TRC header: the status legend file and the observed share per region."""
    regs = ", ".join(f"{r} {100 * cov['regions'][r]['observed']:.0f}%" for r in REGIONS)
    nan = ("kept as the model's values (--fill-unobserved)" if fill_unobserved
           else "NaN")
    return (f"observed share of frames: {regs}; frames estimated {100 * cov['frames_estimated_share']:.0f}% (others "
            f"{nan}); per keypoint and frame: keypoints37_status.csv")


# ---- writing (used by simspine.annotate.annotate) ------------------------------------------------
def write_status_csv(path, time: np.ndarray, kp_status: np.ndarray, estimated: np.ndarray):
    """Write :func:`status_csv` to ``path`` atomically."""
    from simspine.fileio import write_text_atomic

    return write_text_atomic(path, status_csv(time, kp_status, estimated))


def write_model_outputs(model_dir, keypoints: Trajectories, rotations, kp_status: np.ndarray,
                        estimated: np.ndarray, cov: dict, fill_unobserved: bool = False):
    """Re-write the model's outputs in ``model_dir`` with what :mod:`simspine.observation` knows.

    ``keypoints37.trc`` (NaN in frames not estimated unless ``fill_unobserved``; a header note),
    ``keypoints37.npz`` (positions, ``status`` (T, 37) int8, ``frame_estimated``,
    ``region_status`` (T, 3), legend in the metadata), ``rotations.csv/.npz`` (NaN rows likewise;
    the npz gains the same status arrays, the CSV the columns ``frame_estimated`` and
    ``<region>_status``). Every file is written atomically. Returns the (masked) keypoints and
    rotations.
    """
    import dataclasses
    import json
    from pathlib import Path

    from simspine.biomech.fitting import write_rotations
    from simspine.fileio import atomic_path, write_text_atomic
    from simspine.io.npz import write_trajectories_npz
    from simspine.io.trc import write_trc

    model_dir = Path(model_dir)
    est = np.asarray(estimated, bool)
    if len(keypoints.time) != len(est) or (rotations is not None and len(rotations.time) != len(est)):
        raise ValueError("status and model outputs have different frame counts")
    if not fill_unobserved:
        keypoints = Trajectories(keypoints.time, keypoints.names, mask_frames(keypoints.xyz, est),
                                 np.where(est[:, None], keypoints.conf, 0.0), keypoints.frame, dict(keypoints.meta))
    reg = region_status(kp_status)
    legend = {"status_codes": LEGEND, "regions": list(REGIONS), "fill_unobserved": bool(fill_unobserved),
              "rule": cov.get("rule", "")}
    write_trc(model_dir / "keypoints37.trc", keypoints, note=trc_note(cov, fill_unobserved))
    write_trajectories_npz(model_dir / "keypoints37.npz", keypoints,
                           arrays=dict(status=np.asarray(kp_status, np.int8), frame_estimated=est,
                                       region_status=reg),
                           meta={"units": {"xyz": "m", "time": "s"}, "observation": legend})
    if rotations is not None:
        if not fill_unobserved:
            rotations = dataclasses.replace(rotations, intervertebral_deg=mask_frames(rotations.intervertebral_deg, est),
                                            segment_euler_deg=mask_frames(rotations.segment_euler_deg, est))
        csv, npz = write_rotations(rotations, model_dir)
        # the status of the frame and the regions, as extra CSV columns and npz arrays
        lines = csv.read_text().splitlines()
        words = np.array([STATUS_NAMES[c] for c in range(4)])
        head = [i for i, ln in enumerate(lines) if not ln.startswith("#")][0]
        lines[head] += ",frame_estimated," + ",".join(f"{r}_status" for r in REGIONS)
        for f, i in enumerate(range(head + 1, len(lines))):
            lines[i] += f",{int(est[f])}," + ",".join(words[reg[f]])
        write_text_atomic(csv, "\n".join(lines) + "\n")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        meta["observation"] = legend
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays, frame_estimated=est, region_status=reg, region_names=np.array(REGIONS),
                         keypoint_status=np.asarray(kp_status, np.int8),
                         keypoint_names=np.array(spinetrack37().names), meta=json.dumps(meta))
    return keypoints, rotations
