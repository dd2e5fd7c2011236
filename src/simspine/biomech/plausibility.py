"""Plausibility warnings: checks that name what they saw and what to do.

Every check is a pure function over arrays (plus, for the coordinate ranges, a reader of the
model's bounds) and returns a list of :class:`PlausibilityWarning` (``code``, ``message``,
``details``); an empty list means nothing implausible was seen. ``str(w)`` is the message.
:func:`simspine.biomech.fitting.run_ik_pipeline` runs the marker, IK and height checks and
stores the warnings in ``summary.json``; ``simspine fk`` runs :func:`check_motion_units` on its
input file.

Checks and how they decide (thresholds are module constants and keyword arguments):

* **Coordinate at a bound** (:func:`check_bounds`, code ``at_bound``): a free coordinate within
  0.5 deg (rotations) / 1 mm (translations) of its model range's end, or beyond it, in more than
  5% of the frames. The IK keeps coordinates inside their ranges, so a coordinate resting on a
  bound means the markers ask for more than the model allows (a mislabelled or misplaced marker,
  an arm moving beyond the shoulder's range), or that they do not determine the coordinate (with
  exact markers and a nearly straight elbow, the IK leaves humeral rotation at +-90 deg). Not checked: the root joint (pelvis in ground; the
  IK leaves it unbounded); a bound that is the coordinate's default value (knee and elbow at full
  extension: where people stand, not a sign of bad markers); the coordinates that SpineTrack-37
  markers observe only weakly (:data:`WEAKLY_OBSERVED`: wrist, forearm rotation, subtalar, toes,
  moved by one marker a centimetre or two from the joint, so a 1 cm placement error drives them
  to a bound: on the demo session mtp_angle_r rests on its bound in 94% of frames). The pipeline
  also skips the coordinates the markers do not determine (held at the neutral pose).
* **Large marker error** (:func:`check_marker_errors`, ``marker_error``): a marker whose RMS IK
  error over the frames it was used in exceeds 5 cm, or 3x the median marker's RMS (and 2 cm): a
  mislabelled marker, one on another body part than the model's, or a marker set in another
  place. Why 5 cm and not 3: on the demo session (video-based markers, 1 cm placement jitter)
  the low-weight markers (ears, latissimus: IK weights 0.1-0.3) reach 32-36 mm RMS with a median
  of 15 mm; a mislabelled marker is typically 10 cm or more off.
* **Not Y-up** (:func:`check_up_axis`, ``not_y_up``): the direction from the lower body (hips,
  sacrum, lumbar spine, legs) to the upper body (head, neck, shoulders, clavicles) is more than
  60 deg away from +Y in more than half of the frames, i.e. the subject lies down in OpenSim's
  Y-up ground. The axis it mostly points along is named: +Z is the usual Z-up lab frame
  (convert with :func:`simspine.frames.zup_to_yup`).
* **Left/right swapped** (:func:`check_lr_swap`, ``lr_swapped``): a geometric test, chosen over
  fitting the model twice (once with the labels mirrored) because it needs no solver, works per
  left/right pair and sees the same thing the IK residuals would: a mirrored labelling differs
  from the true one only through the body's front/back asymmetry. Per frame, the body's up axis
  (lower to upper body) and front (nose ahead of the ears, toes ahead of the heels, hip centres
  ahead of the sacrum, clavicles ahead of the upper thoracic spine; all midpoints, so they do not
  depend on the L/R labels) give the subject's right, ``front x up`` (in OpenSim: X front, Y up,
  Z right). A pair ``L<name>``/``R<name>`` whose right point lies on the subject's left in more
  than half of the frames is reported; when (nearly) every pair is, the whole labelling is
  mirrored, or the world frame is left-handed (one axis flipped). The test is invariant to
  rotations, so it also holds on Z-up data.
* **Height** (:func:`check_height`, ``height``): a (marker-estimated) height outside 1.2-2.2 m;
  a value near 1000x or 100x a stature names millimetres or centimetres.
* **Degrees read as radians** (:func:`check_motion_units`, ``motion_units``): joint rotations
  (root joint excluded: a heading may take any value) in a file saying ``inDegrees=no`` that
  exceed 2 pi -- no joint of the model turns that far -- are degrees; a file saying
  ``inDegrees=yes`` whose joint rotations all stay within +-pi (3.14 deg if they were degrees)
  while spanning more than 1 unit (57 deg if they were radians) holds radians.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: A coordinate is at a bound when within this distance of it (rotations, degrees) ...
BOUND_TOL_DEG = 0.5
#: ... or (translations, metres) ...
BOUND_TOL_M = 0.001
#: ... and it is reported when that holds in more than this share of the frames.
BOUND_SHARE = 0.05
#: Marker RMS error above this is reported (metres) ...
MARKER_RMS_ABS_M = 0.05
#: ... as is one above this multiple of the median marker's RMS ...
MARKER_RMS_REL = 3.0
#: ... when it is also above this (metres; so near-exact fits do not warn about 0.3 mm).
MARKER_RMS_REL_FLOOR_M = 0.02
#: Up direction more than this far from +Y (degrees) ...
UP_ANGLE_DEG = 60.0
#: ... in more than this share of frames: not Y-up.
UP_SHARE = 0.5
#: Plausible stature range, metres.
HEIGHT_RANGE_M = (1.2, 2.2)
#: Coordinates not checked at bounds: SpineTrack-37 markers observe them only weakly (the same
#: list as :data:`simspine.biomech.motion.UNOBSERVED`).
WEAKLY_OBSERVED = ("wrist_flex", "wrist_dev", "pro_sup", "subtalar", "mtp")

UPPER_BODY = ("Head", "Nose", "LEye", "REye", "LEar", "REar", "Neck", "Neck_02", "Neck_03", "LShoulder",
              "RShoulder", "LClavicle", "RClavicle", "Spine_05")
LOWER_BODY = ("LHip", "RHip", "Hip", "Spine_01", "LKnee", "RKnee", "LAnkle", "RAnkle", "LHeel", "RHeel")
#: Front cues (ahead, behind): midpoints of the named points, independent of L/R labels.
FRONT_CUES = ((("Nose",), ("LEar", "REar")),
              (("LEye", "REye"), ("LEar", "REar")),
              (("LBigToe", "RBigToe"), ("LHeel", "RHeel")),
              (("LHip", "RHip"), ("Hip",)),
              (("LClavicle", "RClavicle"), ("Spine_05",)))


@dataclass
class PlausibilityWarning:
    """One warning: ``code`` (which check), ``message`` (what was seen, what to do), ``details``
    (the numbers behind it, JSON-serialisable)."""

    code: str
    message: str
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "details": self.details}


@dataclass(frozen=True)
class CoordinateBound:
    """A coordinate's model range: ``lo``/``hi`` in radians (rotations) or metres; ``default``:
    its default value (a bound equal to it is not checked)."""

    name: str
    lo: float
    hi: float
    rotational: bool
    default: float = float("nan")


def coordinate_bounds(model) -> dict[str, CoordinateBound]:
    """Bounds of the free coordinates of ``model`` (``opensim.Model`` or path) that the IK
    enforces: root-joint (in ground), dependent and locked coordinates are left out."""
    from pathlib import Path

    from simspine.biomech.model import coordinate_info, load_model

    if isinstance(model, (str, Path)):
        model = load_model(model)
    info = coordinate_info(model)
    js = model.getJointSet()
    root = {js.get(i).getName() for i in range(js.getSize())
            if js.get(i).getParentFrame().findBaseFrame().getName() == "ground"}
    return {c.name: CoordinateBound(c.name, c.range[0], c.range[1], c.rotational, c.default) for c in info
            if not c.dependent and not c.locked and c.joint not in root}


def _fmt_value(v: float, rotational: bool) -> str:
    return f"{np.rad2deg(v):.1f} deg" if rotational else f"{v:.3f} m"


def check_bounds(names: Sequence[str], values, bounds: Mapping[str, CoordinateBound], skip: Iterable[str] = (),
                 share: float = BOUND_SHARE, tol_deg: float = BOUND_TOL_DEG, tol_m: float = BOUND_TOL_M,
                 weakly_observed: Iterable[str] = WEAKLY_OBSERVED) -> list[PlausibilityWarning]:
    """Coordinates at (or beyond) a bound of their range in more than ``share`` of the frames.

    ``values`` (T, C): radians / metres, columns ``names``; ``bounds`` from
    :func:`coordinate_bounds`. Not checked: columns without a bound, in ``skip``, or whose name
    contains one of ``weakly_observed``, and a bound equal to the coordinate's default value. One
    warning per coordinate and bound, worst first.
    """
    values = np.asarray(values, dtype=float).reshape(len(np.atleast_1d(values)), -1)
    skip = set(skip)
    found = []
    for j, n in enumerate(names):
        b = bounds.get(n)
        if b is None or n in skip or any(w in n for w in weakly_observed):
            continue
        v = values[:, j]
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        tol = np.deg2rad(tol_deg) if b.rotational else tol_m
        for side, bound, hit in (("lower", b.lo, v <= b.lo + tol), ("upper", b.hi, v >= b.hi - tol)):
            if abs(bound - b.default) < tol:
                continue
            frac = float(hit.mean())
            if frac > share:
                found.append((frac, n, side, bound, b.rotational, int(hit.sum()), int(v.size)))
    found.sort(key=lambda f: -f[0])
    out = []
    for frac, n, side, bound, rot, k, total in found:
        within = f"{tol_deg:g} deg" if rot else f"{tol_m * 1000:g} mm"
        out.append(PlausibilityWarning(
            "at_bound",
            f"{n} is at its {side} bound ({_fmt_value(bound, rot)}) in {frac:.0%} of frames ({k} of {total}; "
            f"within {within}, reported above {share:.0%}): the markers ask for motion beyond the model's range "
            "or leave this coordinate undetermined; check the labels and placement of the markers around this "
            "joint, widen the model's range if the subject really moves that far, and do not trust this "
            "coordinate where it rests on the bound",
            {"coordinate": n, "bound": side, "bound_value": float(np.rad2deg(bound)) if rot else float(bound),
             "units": "deg" if rot else "m", "share": frac, "frames": k, "of_frames": total}))
    return out


def marker_rms(marker_errors) -> np.ndarray:
    """(M,) RMS over frames of each marker's IK error (NaN frames ignored; NaN if never used)."""
    e = np.asarray(marker_errors, dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.sqrt(np.nanmean(e ** 2, axis=0))


def check_marker_errors(marker_names: Sequence[str], marker_errors, abs_m: float = MARKER_RMS_ABS_M,
                        rel: float = MARKER_RMS_REL,
                        rel_floor_m: float = MARKER_RMS_REL_FLOOR_M) -> list[PlausibilityWarning]:
    """Markers whose RMS IK error (``marker_errors`` (T, M), metres, NaN where unused) exceeds
    ``abs_m``, or ``rel`` x the median marker's RMS when also above ``rel_floor_m``. One warning
    listing them, worst first."""
    rms = marker_rms(marker_errors)
    ok = np.isfinite(rms)
    if not ok.any():
        return []
    med = float(np.median(rms[ok]))
    limit = min(abs_m, max(rel * med, rel_floor_m))
    bad = [(float(rms[j]), marker_names[j]) for j in np.flatnonzero(ok) if rms[j] > limit]
    if not bad:
        return []
    bad.sort(reverse=True)
    listed = ", ".join(f"{n} {r * 1000:.0f} mm" for r, n in bad)
    return [PlausibilityWarning(
        "marker_error",
        f"large IK marker error (RMS over the trial): {listed}; the median marker's RMS is {med * 1000:.1f} mm "
        f"(reported above {abs_m * 1000:.0f} mm, or above {rel:g}x the median and {rel_floor_m * 1000:.0f} mm): "
        "such a marker is likely mislabelled, swapped, or placed elsewhere than the model's marker -- check it, "
        "or leave it out (--exclude-markers) or down-weight it",
        {"markers": {n: r for r, n in bad}, "median_rms_m": med, "limit_m": limit})]


def _centroid(names: Sequence[str], xyz: np.ndarray, group: Sequence[str]) -> np.ndarray:
    idx = [names.index(n) for n in group if n in names]
    if not idx:
        return np.full((xyz.shape[0], 3), np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(xyz[:, idx], axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-9, v / n, np.nan)


def body_up(names: Sequence[str], xyz) -> np.ndarray:
    """(T, 3) unit vectors from the lower-body centroid to the upper-body centroid (NaN where
    either group has no point)."""
    xyz = np.asarray(xyz, dtype=float)
    names = list(names)
    return _unit(_centroid(names, xyz, UPPER_BODY) - _centroid(names, xyz, LOWER_BODY))


_AXES = ("X", "Y", "Z")


def check_up_axis(names: Sequence[str], xyz, max_angle_deg: float = UP_ANGLE_DEG,
                  share: float = UP_SHARE) -> list[PlausibilityWarning]:
    """Warn when the body's up direction (:func:`body_up`) is more than ``max_angle_deg`` from +Y
    in more than ``share`` of the frames where it is known. ``xyz`` (T, M, 3) metres."""
    up = body_up(names, xyz)
    ok = np.isfinite(up).all(axis=1)
    if ok.sum() == 0:
        return []
    up = up[ok]
    off = up[:, 1] < np.cos(np.deg2rad(max_angle_deg))
    frac = float(off.mean())
    if frac <= share:
        return []
    mean = _unit(up.mean(axis=0))
    if not np.isfinite(mean).all():
        mean = up[0]
    k = int(np.argmax(np.abs(mean)))
    axis = ("+" if mean[k] > 0 else "-") + _AXES[k]
    tilt = float(np.rad2deg(np.arccos(np.clip(mean[1], -1, 1))))
    if axis == "+Z":
        what = ("the markers look Z-up (the usual lab frame), so the subject lies down in OpenSim's Y-up ground; "
                "convert them with simspine.frames.zup_to_yup ((x, y, z) -> (y, z, x)) before scaling and IK")
    elif axis == "-Y":
        what = ("the markers look upside down (Y down, as in camera coordinates); rotate them 180 deg about X "
                "((x, y, z) -> (x, -y, -z)) before scaling and IK")
    else:
        what = (f"the markers look {axis[1]}-up ({axis} up), so the subject lies down in OpenSim's Y-up ground; "
                f"rotate them so that {axis} becomes +Y before scaling and IK (if the subject really lies down, "
                "ignore this)")
    return [PlausibilityWarning(
        "not_y_up",
        f"the body's up direction (lower body to head and shoulders) is more than {max_angle_deg:g} deg from +Y in "
        f"{frac:.0%} of frames and points along {axis} on average ({tilt:.0f} deg from +Y): {what}",
        {"share": frac, "mean_up": [float(x) for x in mean], "axis": axis, "angle_from_y_deg": tilt})]


def body_front(names: Sequence[str], xyz, up: np.ndarray | None = None) -> np.ndarray:
    """(T, 3) unit vectors towards the subject's front, perpendicular to ``up`` (default
    :func:`body_up`), from :data:`FRONT_CUES` (each cue normalised, then summed); NaN where no cue."""
    xyz = np.asarray(xyz, dtype=float)
    names = list(names)
    up = body_up(names, xyz) if up is None else up
    total = np.zeros((xyz.shape[0], 3))
    count = np.zeros(xyz.shape[0])
    for ahead, behind in FRONT_CUES:
        if not (any(n in names for n in ahead) and any(n in names for n in behind)):
            continue
        v = _centroid(names, xyz, ahead) - _centroid(names, xyz, behind)
        v = v - np.sum(v * up, axis=1, keepdims=True) * up
        u = _unit(v)
        good = np.isfinite(u).all(axis=1)
        total[good] += u[good]
        count[good] += 1
    total[count == 0] = np.nan
    return _unit(total - np.sum(total * up, axis=1, keepdims=True) * up)


def lr_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs (``L<x>``, ``R<x>``) both in ``names``."""
    s = set(names)
    return [(n, "R" + n[1:]) for n in names if n.startswith("L") and len(n) > 1 and n[1].isupper()
            and "R" + n[1:] in s]


def check_lr_swap(names: Sequence[str], xyz, share: float = 0.5, min_frames: int = 3,
                  min_side_m: float = 0.01) -> list[PlausibilityWarning]:
    """Left/right pairs whose right point lies on the subject's left in more than ``share`` of
    the decisive frames (both points, an up and a front direction known, the pair at least
    ``min_side_m`` off the midplane); at least ``min_frames`` and a fifth of the frames must be
    decisive. See the module docstring for the geometry."""
    xyz = np.asarray(xyz, dtype=float)
    names = list(names)
    up = body_up(names, xyz)
    front = body_front(names, xyz, up)
    right = _unit(np.cross(front, up))
    T = xyz.shape[0]
    per_pair = {}
    for ln, rn in lr_pairs(names):
        side = np.sum((xyz[:, names.index(rn)] - xyz[:, names.index(ln)]) * right, axis=1)
        dec = np.isfinite(side) & (np.abs(side) >= min_side_m)
        n = int(dec.sum())
        if n < max(min_frames, 0.2 * T):
            continue
        per_pair[(ln, rn)] = (float((side[dec] < 0).mean()), n)
    swapped = {p: v for p, v in per_pair.items() if v[0] > share}
    if not swapped:
        return []
    details = {"pairs": {f"{a}/{b}": {"swapped_share": s, "frames": n} for (a, b), (s, n) in swapped.items()},
               "pairs_checked": len(per_pair)}
    listed = ", ".join(f"{a}/{b} {s:.0%}" for (a, b), (s, n) in sorted(swapped.items(), key=lambda kv: -kv[1][0]))
    how = ("the side was judged from the body's front (nose ahead of the ears, toes ahead of the heels, hips "
           "ahead of the sacrum, clavicles ahead of the spine) and up (lower body to head)")
    if len(swapped) >= max(2, 0.8 * len(per_pair)):
        msg = (f"left and right look swapped for {len(swapped)} of {len(per_pair)} left/right pairs (share of frames: "
               f"{listed}): the whole labelling is mirrored, or the world frame is left-handed (one axis flipped); "
               "swap the L/R marker names (simspine.skeletons.spinetrack37().swap gives the pairs) or flip the axis; "
               + how)
    else:
        msg = (f"left and right look swapped for {listed} of frames: the point labelled right lies on the subject's "
               f"left; check these markers' labels (swap them if mislabelled); {how}")
    return [PlausibilityWarning("lr_swapped", msg, details)]


def check_height(height_m: float | None, lo: float = HEIGHT_RANGE_M[0],
                 hi: float = HEIGHT_RANGE_M[1]) -> list[PlausibilityWarning]:
    """A height (metres) outside ``[lo, hi]``; names millimetres / centimetres when the value is
    a plausible stature in those units."""
    if height_m is None or not np.isfinite(height_m):
        return []
    h = float(height_m)
    if lo <= h <= hi:
        return []
    if lo * 1000 <= h <= hi * 1000:
        hint = "the markers are probably in millimetres: convert them to metres"
    elif lo * 100 <= h <= hi * 100:
        hint = "the markers are probably in centimetres: convert them to metres"
    elif h < lo:
        hint = ("a child, a partial marker set whose missing segments were guessed, or markers in another unit "
                "-- check the units, or give the height (--height)")
    else:
        hint = "check the marker units and labels, or give the height (--height)"
    return [PlausibilityWarning(
        "height", f"the estimated height is {h:.3f} m, outside {lo:g}-{hi:g} m: {hint}",
        {"height_m": h, "range_m": [lo, hi]})]


def check_motion_units(names: Sequence[str], values, in_degrees: bool, rotational: Iterable[str],
                       unbounded: Iterable[str] = ()) -> list[PlausibilityWarning]:
    """Degrees read as radians (or radians labelled degrees) in a coordinates table.

    ``values`` (T, N) as in the file; ``in_degrees``: the header's flag; ``rotational``: the
    names of rotational coordinates; ``unbounded``: rotational columns left out (the root
    joint's, which may take any value). See the module docstring for the rules.
    """
    vals = np.asarray(values, dtype=float).reshape(-1, len(names))
    rot, skip = set(rotational), set(unbounded)
    cols = [j for j, n in enumerate(names) if n in rot and n not in skip]
    if not cols:
        return []
    v = vals[:, cols]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        peak = np.nanmax(np.abs(v), axis=0)
        span = np.nanmax(v, axis=0) - np.nanmin(v, axis=0)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    span = np.where(np.isfinite(span), span, 0.0)
    jnames = [names[j] for j in cols]
    if not in_degrees:
        over = [(float(p), n) for p, n in zip(peak, jnames, strict=True) if p > 2 * np.pi]
        if not over:
            return []
        over.sort(reverse=True)
        listed = ", ".join(f"{n} up to {p:.1f}" for p, n in over[:5]) + (" ..." if len(over) > 5 else "")
        return [PlausibilityWarning(
            "motion_units",
            f"the file says inDegrees=no (radians) but {len(over)} of {len(cols)} joint rotations exceed 2 pi "
            f"({listed}), more than any joint turns: the values look like degrees read as radians; set "
            "inDegrees=yes in the header (or convert the values to radians)",
            {"in_degrees": False, "columns_over_2pi": {n: p for p, n in over}, "columns_checked": len(cols)})]
    top, widest = float(peak.max()), float(span.max())
    if len(cols) >= 3 and top <= np.pi and widest > 1.0:
        return [PlausibilityWarning(
            "motion_units",
            f"the file says inDegrees=yes but every joint rotation stays within +-{top:.2f} (at most {top:.2f} deg "
            f"if degrees) while one spans {widest:.2f} ({np.rad2deg(widest):.0f} deg if radians): the values look "
            "like radians labelled as degrees; set inDegrees=no in the header (or convert the values to degrees)",
            {"in_degrees": True, "max_abs": top, "max_span": widest, "columns_checked": len(cols)})]
    return []


def check_motion_file(path, bounds: Mapping[str, CoordinateBound]) -> list[PlausibilityWarning]:
    """:func:`check_motion_units` on a ``.mot``/``.sto`` file; the joint rotations are the
    rotational coordinates of ``bounds`` (:func:`coordinate_bounds`: no root joint, no coupled
    coordinates)."""
    from simspine.io.mot import read_mot

    table = read_mot(path)
    rot = [n for n, b in bounds.items() if b.rotational]
    return check_motion_units(table.names, table.values, table.in_degrees, rot)


def check_markers(names: Sequence[str], xyz) -> list[PlausibilityWarning]:
    """The checks on marker trajectories alone: :func:`check_up_axis`, :func:`check_lr_swap`."""
    return check_up_axis(names, xyz) + check_lr_swap(names, xyz)
