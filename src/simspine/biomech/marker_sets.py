"""A lab's own markers: OpenSim MarkerSet files, scaling pairs for them, the shipped trunk protocol,
and the OpenSim-style IK options (excluded markers, marker weights).

**Marker sets** (``simspine ik --marker-set FILE|NAME``). An OpenSim MarkerSet XML (``<Marker
name=...>`` with ``<socket_parent_frame>`` naming a body, e.g. ``/bodyset/torso`` or ``torso``, and
``<location>`` in metres in that body's frame) adds the lab's markers to the prepared model
(:func:`simspine.biomech.model.prepare_model` ``extra_markers``): scaling and IK then use the
trial's markers that the model has, and the 37 SpineTrack-37 markers stay in the model, so FK still
writes the 37 keypoints. A file marker with a SpineTrack-37 name replaces that marker's placement
(its keypoint then follows the file). Shipped names (:data:`SHIPPED`): ``trunk``.

**Scaling pairs of a lab marker set** (:func:`scaling_segments`). Each segment of
:data:`simspine.biomech.scaling.SEGMENTS` keeps its SpineTrack-37 pairs (unused when those markers
are absent) and gains pairs of the file's markers, derived automatically:

1. every pair of file markers on the segment's own bodies (rigid: their distance scales exactly
   with the segment, whatever the pose), when the longest such pair spans at least
   :data:`MIN_WITHIN_SPAN` (10 cm);
2. otherwise (one marker, or a short pair such as the two wrist styloids) each of the segment's
   markers is paired with the file marker of the *parent* segment nearest the joint between them
   (the child's origin in the default pose: acromion for the elbow, lateral epicondyle for the
   wrist), as the SpineTrack-37 pairs Shoulder-Elbow and Elbow-Wrist do. Such pairs span a joint;
   the scaling's IK-based refinement takes the pose into account.

A ScaleTool-style ``MeasurementSet`` (``<Measurement>`` with ``<MarkerPairSet>`` pairs and a
``<BodyScaleSet>`` naming the bodies it scales), inside the marker-set file or in a ScaleTool setup
file given with ``--measurement-set``, replaces the derived pairs of the segments it names (the
bodies of one measurement must all belong to one simspine segment).

**The trunk protocol** (``src/simspine/data/markerset_trunk.xml``, :func:`trunk_protocol`). 18
markers on palpable bony landmarks, each placed on the model's bone mesh at the landmark
(computed from the meshes below; ``tests/test_marker_sets.py`` re-derives them and checks that each
lies on its mesh, within 3 mm of a vertex). Frames: x anterior, y up, z to the subject's right;
left markers come from the left meshes with the same rule mirrored.

======  =======  ==================  =====================================================================
marker  body     mesh                landmark and rule
======  =======  ==================  =====================================================================
R/LASIS pelvis   r_/l_pelvis.vtp     anterior superior iliac spine: most anterior vertex of the ilium
                                     above the acetabulum (y > -0.02 m); the pelvis origin lies midway
R/LPSIS pelvis   r_/l_pelvis.vtp     posterior superior iliac spine: most posterior vertex of the ilium
                                     with y > -0.02 m
C7      torso    cerv7.vtp           C7 spinous-process tip: most posterior vertex of C7
T10     torso    thoracic10_s.vtp    T10 spinous-process tip: most posterior vertex of T10
IJ      torso    hat_ribs_scap.vtp   incisura jugularis (jugular notch): highest vertex within 1 cm of
                                     the midline in front of the spine (x > 0.03 m)
PX      torso    hat_ribs_scap.vtp   processus xiphoideus: lowest vertex within 1 cm of the midline in
                                     front (x > 0.03 m)
R/LCLAV torso    hat_ribs_scap.vtp   clavicle mid-shaft, superior surface: highest vertex in front
                                     (x > 0) within 5 mm of |z| = 0.08 m, halfway between the
                                     sternoclavicular (|z| ~ 0.03) and acromioclavicular (|z| ~ 0.14)
                                     joints
R/LACR  torso    hat_ribs_scap.vtp   acromion, lateral edge of its superior surface: most lateral vertex
                                     among those lateral of |z| = 0.13 m and within 1 cm of the highest
                                     one there (the model's shoulder girdle is part of the torso body)
R/LLEP  humerus  humerus_r/lv.vtp    lateral epicondyle: most lateral vertex (largest z right, smallest
                                     left) of the distal humerus (y < -0.25 m)
R/LRSP  radius   radius_r/lv.vtp     radial styloid process: most distal vertex (lowest y) of the radius
R/LUSP  ulna     ulna_r/lv.vtp       ulnar styloid process: most distal vertex of the ulna
======  =======  ==================  =====================================================================

The markers sit *on* the bone surface. Real marker centres are a few mm to ~1.5 cm further out
(skin, marker radius); a consistent offset of that size is what marker-offset registration absorbs.
Derived scaling pairs: pelvis from the four iliac spines, torso from the eight torso markers,
upper arm from acromion-lateral epicondyle, forearm from lateral epicondyle-radial/ulnar styloid;
head, legs and feet have no marker and take their factors as the scaling module says.

**IK options**: :func:`read_marker_weights` (JSON ``{name: weight}``, CSV ``name,weight`` or an
OpenSim IKTaskSet XML with ``<IKMarkerTask>``), :func:`apply_marker_options` (``--exclude-markers``
and weights, validated against the trial and the model).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from simspine.biomech.model import MarkerPlace, mesh_points_in_body, model_body_names
from simspine.errors import InputError
from simspine.fileio import write_text_atomic
from simspine.trajectories import Trajectories

#: Marker sets shipped with the package: name -> file in ``simspine/data``.
SHIPPED = {"trunk": "markerset_trunk.xml"}
#: A segment's own markers give its pairs when they span at least this much (m).
MIN_WITHIN_SPAN = 0.10
#: Parent segment of each segment (the joint between them is the child's first body's origin).
SEGMENT_PARENT = {
    "torso": "pelvis", "head": "torso",
    **{f"{seg}_{s}": f"{par}_{s}" if par not in ("pelvis", "torso") else par
       for s in ("l", "r")
       for seg, par in (("thigh", "pelvis"), ("shank", "thigh"), ("foot", "shank"),
                        ("upperarm", "torso"), ("forearm", "upperarm"))},
}


@dataclass
class LabMarkerSet:
    """A lab's marker set: ``markers`` (body, offset), ``measurements`` (segment -> marker pairs
    from a MeasurementSet, when one was given), where it came from and its content digest."""

    source: str
    markers: list[MarkerPlace]
    measurements: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    digest: str = ""

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.markers]


def shipped_path(name: str) -> Path:
    """Path of a shipped marker set (:data:`SHIPPED`)."""
    return Path(str(resources.files("simspine.data").joinpath(SHIPPED[name])))


def resolve_marker_set(spec: str | os.PathLike) -> Path:
    """A shipped name (``trunk``) or a file path -> the file's path (errors name both options)."""
    if str(spec) in SHIPPED:
        return shipped_path(str(spec))
    p = Path(spec)
    if not p.is_file():
        raise InputError(p, f"marker set not found: give an OpenSim MarkerSet XML file or a shipped name "
                            f"({', '.join(SHIPPED)})")
    return p


def _parse_xml(path: Path, what: str) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise InputError(path, f"not a valid XML file ({e}); expected {what}") from None
    except OSError as e:
        raise InputError(path, f"cannot read {what} ({e.strerror or e})") from None


def read_marker_set(spec: str | os.PathLike) -> LabMarkerSet:
    """Read an OpenSim MarkerSet XML (or a shipped name), validated: every marker has a name, a
    body of the model and three finite location numbers; names are unique. A ``MeasurementSet``
    in the same file is read too (:func:`read_measurement_set`)."""
    path = resolve_marker_set(spec)
    root = _parse_xml(path, "an OpenSim MarkerSet")
    bodies = model_body_names()
    markers, problems, seen = [], [], set()
    for m in root.iter("Marker"):
        name = (m.get("name") or "").strip()
        if not name:
            problems.append("a <Marker> without a name")
            continue
        if name in seen:
            problems.append(f"marker {name} defined twice")
        seen.add(name)
        body = (m.findtext("socket_parent_frame") or m.findtext("body") or "").strip().rsplit("/", 1)[-1]
        if body not in bodies:
            problems.append(f"marker {name}: body {body or '(none)'!r} is not a body of the model")
            continue
        try:
            loc = tuple(float(x) for x in (m.findtext("location") or "").split())
        except ValueError:
            loc = ()
        if len(loc) != 3 or not np.isfinite(loc).all():
            problems.append(f"marker {name}: <location> must be three numbers (metres), got "
                            f"{(m.findtext('location') or '').strip()!r}")
            continue
        if max(abs(v) for v in loc) > 1.0:
            problems.append(f"marker {name}: location {loc} is over 1 m from its body's origin (millimetres?)")
            continue
        markers.append(MarkerPlace(name, body, loc))
    if problems:
        raise InputError(path, "invalid marker set: " + "; ".join(problems)
                         + f" (bodies of the model: {', '.join(bodies)})" * any("body" in p for p in problems))
    if not markers:
        raise InputError(path, "no <Marker> in the file (an OpenSim MarkerSet XML is expected)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    lab = LabMarkerSet(str(path) if str(spec) not in SHIPPED else f"{spec} ({path.name})", markers,
                       digest=digest)
    if next(root.iter("MeasurementSet"), None) is not None:
        lab.measurements = read_measurement_set(path, known=set(lab.names) | _st37_names())
    return lab


def _st37_names() -> set[str]:
    from simspine.skeletons import spinetrack37

    return set(spinetrack37().names)


def read_measurement_set(path: str | os.PathLike, known: set[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """Segment -> marker pairs from the ``MeasurementSet`` of an XML file (a ScaleTool setup file or
    a marker-set file holding one). Each applied ``<Measurement>``'s ``<BodyScale>`` bodies must
    belong to one simspine segment; pairs name two markers (checked against ``known`` if given)."""
    from simspine.biomech.scaling import SEGMENTS

    path = Path(path)
    root = _parse_xml(path, "an OpenSim ScaleTool setup or MeasurementSet")
    ms = next(root.iter("MeasurementSet"), None)
    if ms is None:
        raise InputError(path, "no <MeasurementSet> in the file")
    body_seg = {b: s.name for s in SEGMENTS for b in s.bodies}
    out: dict[str, list[tuple[str, str]]] = {}
    problems, unknown = [], []
    for meas in ms.iter("Measurement"):
        mname = meas.get("name", "?")
        if (meas.findtext("apply") or "true").strip().lower() == "false":
            continue
        pairs = []
        for mp in meas.iter("MarkerPair"):
            names = (mp.findtext("markers") or "").split()
            if len(names) != 2:
                problems.append(f"measurement {mname}: a MarkerPair needs two marker names, got {names}")
                continue
            unknown += [n for n in names if known is not None and n not in known]
            pairs.append((names[0], names[1]))
        bodies = [b.get("name") for b in meas.iter("BodyScale")]
        segs = {body_seg.get(b) for b in bodies}
        if not bodies or None in segs or len(segs) != 1:
            problems.append(f"measurement {mname}: its bodies ({', '.join(b or '?' for b in bodies) or 'none'}) must "
                            f"all belong to one segment (segments and bodies: "
                            + "; ".join(f"{s.name}: {' '.join(s.bodies)}" for s in SEGMENTS) + ")")
            continue
        if pairs:
            out.setdefault(segs.pop(), []).extend(pairs)
    if unknown:
        problems.append(f"marker pairs name markers that are neither in the marker set nor SpineTrack-37: "
                        f"{', '.join(sorted(set(unknown)))}")
    if problems:
        raise InputError(path, "invalid MeasurementSet: " + "; ".join(problems))
    return out


def _segment_of_body() -> dict[str, str]:
    from simspine.biomech.scaling import SEGMENTS

    return {b: s.name for s in SEGMENTS for b in s.bodies}


def derive_pairs(lab: LabMarkerSet, model_path: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """Segment -> pairs of the lab's markers by the rule in the module docstring. ``model_path``:
    a prepared model holding the lab's markers (default pose distances and joint centres)."""
    from simspine.biomech.fk import Kinematics
    from simspine.biomech.scaling import SEGMENTS

    seg_of = _segment_of_body()
    kin = Kinematics(str(model_path))
    kin.set_defaults()
    pos = dict(zip(kin.marker_names, kin.marker_positions(), strict=True))
    by_seg: dict[str, list[str]] = {}
    for m in lab.markers:
        if m.body in seg_of:
            by_seg.setdefault(seg_of[m.body], []).append(m.name)
    out: dict[str, list[tuple[str, str]]] = {}
    for seg in SEGMENTS:
        own = by_seg.get(seg.name, [])
        within = [(a, b) for i, a in enumerate(own) for b in own[i + 1:]]
        span = max((np.linalg.norm(pos[a] - pos[b]) for a, b in within), default=0.0)
        pairs = list(within)
        parent = SEGMENT_PARENT.get(seg.name)
        if own and span < MIN_WITHIN_SPAN and by_seg.get(parent):
            joint = kin.body_origin(seg.bodies[0])
            near = min(by_seg[parent], key=lambda n: np.linalg.norm(pos[n] - joint))
            pairs = [(near, m) for m in own] + pairs
        if pairs:
            out[seg.name] = pairs
    return out


def scaling_segments(lab: LabMarkerSet, model_path: str | os.PathLike):
    """:data:`~simspine.biomech.scaling.SEGMENTS` with the lab's pairs added (MeasurementSet pairs
    where given, else :func:`derive_pairs`), for ``estimate_scaling(segments=...)``."""
    from simspine.biomech.scaling import SEGMENTS, Segment

    extra = derive_pairs(lab, model_path)
    extra.update(lab.measurements)
    out = []
    for seg in SEGMENTS:
        pairs = list(seg.pairs) + [p for p in extra.get(seg.name, []) if p not in seg.pairs]
        out.append(Segment(seg.name, seg.bodies, tuple(pairs)))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The trunk protocol


#: (name, body, mesh, landmark) of the trunk protocol's right-side and midline markers; left
#: markers are named with ``L`` and use the left meshes (see the module docstring for the rules).
TRUNK_LANDMARKS = (
    ("RASIS", "pelvis", "r_pelvis.vtp", "anterior superior iliac spine"),
    ("RPSIS", "pelvis", "r_pelvis.vtp", "posterior superior iliac spine"),
    ("C7", "torso", "cerv7.vtp", "spinous process of C7"),
    ("T10", "torso", "thoracic10_s.vtp", "spinous process of T10"),
    ("IJ", "torso", "hat_ribs_scap.vtp", "incisura jugularis (jugular notch of the sternum)"),
    ("PX", "torso", "hat_ribs_scap.vtp", "processus xiphoideus (xiphoid process)"),
    ("RCLAV", "torso", "hat_ribs_scap.vtp", "clavicle mid-shaft, superior surface"),
    ("RACR", "torso", "hat_ribs_scap.vtp", "acromion, lateral edge of the superior surface"),
    ("RLEP", "humerus_r", "humerus_rv.vtp", "lateral epicondyle of the humerus"),
    ("RRSP", "radius_r", "radius_rv.vtp", "radial styloid process"),
    ("RUSP", "ulna_r", "ulna_rv.vtp", "ulnar styloid process"),
)
_LEFT_MESH = {"r_pelvis.vtp": "l_pelvis.vtp", "humerus_rv.vtp": "humerus_lv.vtp", "radius_rv.vtp": "radius_lv.vtp",
              "ulna_rv.vtp": "ulna_lv.vtp"}


def trunk_landmarks() -> list[tuple[str, str, str, str]]:
    """(name, body, mesh, landmark) of every trunk-protocol marker, file order."""
    out = []
    for name, body, mesh, what in TRUNK_LANDMARKS:
        if name[0] == "R":
            for side in "RL":
                b = body[:-2] + "_" + side.lower() if body.endswith("_r") else body
                out.append((side + name[1:], b, mesh if side == "R" else _LEFT_MESH.get(mesh, mesh), what))
        else:
            out.append((name, body, mesh, what))
    return out


def _landmark(name: str, body: str, mesh: str) -> np.ndarray:
    """The vertex of ``mesh`` (in ``body``'s frame) at ``name``'s landmark (module docstring)."""
    _, p = mesh_points_in_body(mesh, body)
    sided = name[0] in "RL"
    side = -1.0 if name[0] == "L" else 1.0  # mirror z for the left side
    stem = name[1:] if sided else name
    z = side * p[:, 2]

    def pick(mask, key):
        q = p[mask]
        return q[np.argmax(key(q))]

    if stem == "ASIS":
        return pick(p[:, 1] > -0.02, lambda q: q[:, 0])
    if stem == "PSIS":
        return pick(p[:, 1] > -0.02, lambda q: -q[:, 0])
    if stem in ("C7", "T10"):
        return pick(np.ones(len(p), bool), lambda q: -q[:, 0])
    if stem == "IJ":
        return pick((np.abs(p[:, 2]) < 0.01) & (p[:, 0] > 0.03), lambda q: q[:, 1])
    if stem == "PX":
        return pick((np.abs(p[:, 2]) < 0.01) & (p[:, 0] > 0.03), lambda q: -q[:, 1])
    if stem == "CLAV":
        return pick((np.abs(z - 0.08) < 0.005) & (p[:, 0] > 0), lambda q: q[:, 1])
    if stem == "ACR":
        top = p[z > 0.13, 1].max()
        return pick((z > 0.13) & (p[:, 1] >= top - 0.01), lambda q: side * q[:, 2])
    if stem == "LEP":
        return pick(p[:, 1] < -0.25, lambda q: side * q[:, 2])
    if stem in ("RSP", "USP"):
        return pick(np.ones(len(p), bool), lambda q: -q[:, 1])
    raise KeyError(name)  # pragma: no cover - TRUNK_LANDMARKS is fixed


def trunk_protocol() -> list[MarkerPlace]:
    """The trunk protocol's markers computed from the model's meshes (what the shipped
    ``markerset_trunk.xml`` holds, rounded to 0.1 mm)."""
    return [MarkerPlace(name, body, tuple(round(float(v), 4) for v in _landmark(name, body, mesh)))
            for name, body, mesh, _ in trunk_landmarks()]


def marker_set_xml(markers: list[MarkerPlace], comments: dict[str, str] | None = None) -> str:
    """An OpenSim MarkerSet document (OpenSim 4 format) for ``markers``."""
    lines = ['<?xml version="1.0" encoding="UTF-8" ?>', '<OpenSimDocument Version="40000">',
             "\t<MarkerSet name=\"MarkerSet\">", "\t\t<objects>"]
    for m in markers:
        if comments and m.name in comments:
            lines.append(f"\t\t\t<!-- {comments[m.name]} -->")
        lines += [f'\t\t\t<Marker name="{m.name}">',
                  f"\t\t\t\t<socket_parent_frame>/bodyset/{m.body}</socket_parent_frame>",
                  "\t\t\t\t<location>" + " ".join(f"{v:.4f}" for v in m.offset_m) + "</location>",
                  "\t\t\t\t<fixed>true</fixed>", "\t\t\t</Marker>"]
    lines += ["\t\t</objects>", "\t\t<groups />", "\t</MarkerSet>", "</OpenSimDocument>", ""]
    return "\n".join(lines)


def write_trunk_protocol(path: str | os.PathLike) -> Path:
    """Write the trunk protocol (:func:`trunk_protocol`) as a MarkerSet XML with a comment per marker."""
    comments = {name: f"{what}; on {mesh}" for name, _, mesh, what in trunk_landmarks()}
    return write_text_atomic(Path(path), marker_set_xml(trunk_protocol(), comments))


def nearest_vertex_distance(marker: MarkerPlace, mesh: str) -> float:
    """Distance (m) from a marker to the nearest vertex of ``mesh`` (in the marker's body frame)."""
    _, p = mesh_points_in_body(mesh, marker.body)
    return float(np.linalg.norm(p - np.asarray(marker.offset_m), axis=1).min())


# ---------------------------------------------------------------------------------------------
# IK options: excluded markers, weights


def read_marker_weights(path: str | os.PathLike) -> dict[str, float]:
    """Marker name -> IK weight from a JSON object, a CSV (``name,weight`` rows; a header row is
    allowed) or an OpenSim IKTaskSet XML (``<IKMarkerTask name=...>`` with ``<weight>``; a task
    with ``<apply>false</apply>`` gets weight 0, i.e. the marker is not used). Weights must be
    finite and >= 0."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(path, f"cannot read marker weights ({e.strerror or e})") from None
    out: dict[str, float] = {}
    stripped = text.lstrip()
    if stripped.startswith("<"):
        root = _parse_xml(path, "an OpenSim IKTaskSet")
        tasks = list(root.iter("IKMarkerTask"))
        if not tasks:
            raise InputError(path, "no <IKMarkerTask> in the file (an OpenSim IKTaskSet XML is expected)")
        for t in tasks:
            apply = (t.findtext("apply") or "true").strip().lower() != "false"
            w = t.findtext("weight") or "1"
            try:
                out[t.get("name")] = float(w) if apply else 0.0
            except ValueError:
                raise InputError(path, f"weight of {t.get('name')} is not a number: {w.strip()!r}") from None
    elif stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InputError(path, f"not valid JSON ({e})") from None
        for k, v in data.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(path, f"weight of {k} is not a number: {v!r}")
            out[str(k)] = float(v)
    else:
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
        for i, r in enumerate(rows):
            if len(r) != 2:
                raise InputError(path, f"line {i + 1}: expected 'name,weight', got {','.join(r)!r}")
            try:
                out[r[0].strip()] = float(r[1])
            except ValueError:
                if i == 0:
                    continue  # header
                raise InputError(path, f"line {i + 1}: weight of {r[0].strip()} is not a number: {r[1]!r}") from None
    if not out:
        raise InputError(path, "no marker weights in the file (JSON {name: weight}, CSV name,weight or an "
                               "OpenSim IKTaskSet)")
    bad = [f"{k} {v:g}" for k, v in out.items() if not (np.isfinite(v) and v >= 0)]
    if bad:
        raise InputError(path, f"weights must be finite and >= 0: {', '.join(bad)}")
    return out


def parse_marker_list(text: str | None) -> list[str]:
    """``"A,B, C"`` -> ``["A", "B", "C"]`` (empty entries dropped)."""
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def apply_marker_options(markers: Trajectories, model_markers: list[str], exclude=None,
                         weights_file: str | os.PathLike | None = None,
                         weights: dict[str, float] | None = None, source=None
                         ) -> tuple[Trajectories, dict[str, float] | None]:
    """The trial without the excluded markers, and the IK weights (defaults overridden by
    ``weights`` then by ``weights_file``). Unknown names (in neither the trial nor the model) are
    refused, listed in one message."""
    from simspine.skeletons import spinetrack37_info

    exclude = parse_marker_list(exclude) if isinstance(exclude, str) else list(exclude or [])
    if exclude:
        unknown = [n for n in exclude if n not in markers.names]
        if unknown:
            raise InputError(source, f"--exclude-markers: not in the trial: {', '.join(unknown)} "
                                     f"(trial markers: {', '.join(markers.names)})")
        keep = [n for n in markers.names if n not in exclude]
        if not keep:
            raise InputError(source, "--exclude-markers leaves no marker")
        markers = markers.select(keep)
    if weights_file is None:
        return markers, weights
    given = read_marker_weights(weights_file)
    known = set(markers.names) | set(model_markers) | set(exclude)
    unknown = [n for n in given if n not in known]
    if unknown:
        raise InputError(weights_file, f"marker weights for markers in neither the trial nor the model: "
                                       f"{', '.join(unknown)} (trial markers: {', '.join(markers.names)})")
    merged = dict(spinetrack37_info().ik_weights)
    merged.update(weights or {})
    merged.update(given)
    return markers, merged


def file_digest(path: str | os.PathLike | None) -> str | None:
    """Short content hash of a file (resume keys), None for None."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None


# ---------------------------------------------------------------------------------------------
# What run_ik_pipeline needs from the options


@dataclass
class IKInputs:
    """The inputs of :func:`simspine.biomech.fitting.run_ik_pipeline` after the lab options:
    the generic model (with the lab's markers), the trial's markers (excluded ones dropped), IK
    weights, the markers scaling measures (the static trial, or the trial), given factors (skip
    estimation) or the scaling segments, and ``options`` (what the resume key records)."""

    generic_model: Path
    markers: Trajectories
    weights: dict[str, float] | None
    scale_markers: Trajectories
    scale_source: str | None
    factors: dict[str, float] | None = None
    factors_source: str | None = None
    segments: tuple | None = None
    lab: LabMarkerSet | None = None
    options: dict = field(default_factory=dict)


def prepare_ik_inputs(markers: Trajectories, source=None, *, marker_set=None, measurement_set=None, static=None,
                      scale_factors=None, exclude_markers=None, marker_weights=None, weights=None,
                      spine_placement: str = "published", lumbar_coupling: bool = True) -> IKInputs:
    """Read and check the lab options (``--marker-set``, ``--measurement-set``, ``--static``,
    ``--scale-factors``, ``--exclude-markers``, ``--marker-weights``); every file error names the
    file and the problem. Excluded markers leave the static trial too."""
    from simspine.biomech.model import prepare_model, spinetrack37_markers
    from simspine.biomech.scaling import read_scale_factors

    if static is not None and scale_factors is not None:
        raise InputError(scale_factors, "give --static or --scale-factors, not both (given factors skip scaling)")
    lab = read_marker_set(marker_set) if marker_set is not None else None
    if lab is not None and measurement_set is not None:
        lab.measurements.update(read_measurement_set(measurement_set, known=set(lab.names) | _st37_names()))
    elif measurement_set is not None:
        raise InputError(measurement_set, "--measurement-set needs --marker-set (the SpineTrack-37 markers have "
                                          "their own pairs)")
    generic = prepare_model(spine_placement=spine_placement, lumbar_coupling=lumbar_coupling,
                            extra_markers=lab.markers if lab else None)
    model_markers = [m.name for m in spinetrack37_markers(spine_placement)] + (lab.names if lab else [])
    factors = read_scale_factors(scale_factors) if scale_factors is not None else None
    markers, weights = apply_marker_options(markers, model_markers, exclude_markers, marker_weights, weights, source)
    used = [n for n in markers.names if n in model_markers]
    if not used:
        hint = (f" (the marker set {lab.source} has: {', '.join(lab.names)})" if lab else
                " (use --marker-set for a lab's own marker names)")
        raise InputError(source, f"no marker of the trial is a model marker: trial markers "
                                 f"{', '.join(markers.names)}{hint}")
    scale_markers, scale_source = markers, source
    if static is not None and factors is None:
        from simspine.io.trc import read_trc

        scale_markers = read_trc(static)
        scale_source = str(static)
        if "Y up" not in scale_markers.frame and "opensim" not in scale_markers.frame.lower():
            raise InputError(static, f"markers are in frame {scale_markers.frame!r}; the model needs OpenSim "
                                     "ground (Y up)")
        drop = [n for n in parse_marker_list(exclude_markers) if n in scale_markers.names] \
            if isinstance(exclude_markers, str) else [n for n in (exclude_markers or []) if n in scale_markers.names]
        if drop:
            scale_markers = scale_markers.select([n for n in scale_markers.names if n not in drop])
        if not any(n in model_markers for n in scale_markers.names):
            raise InputError(static, "no marker of the static trial is a model marker: "
                                     f"{', '.join(scale_markers.names)}")
    segments = scaling_segments(lab, generic) if lab is not None and factors is None else None
    options = {"marker_set": lab.source if lab else None, "marker_set_digest": lab.digest if lab else None,
               "measurement_set": str(measurement_set) if measurement_set else None,
               "measurement_set_digest": file_digest(measurement_set),
               "static": str(static) if static else None, "static_digest": file_digest(static),
               "scale_factors": str(scale_factors) if scale_factors else None, "given_factors": factors,
               "exclude_markers": parse_marker_list(exclude_markers) if isinstance(exclude_markers, str)
               else list(exclude_markers or []),
               "marker_weights": str(marker_weights) if marker_weights else None,
               "marker_weights_digest": file_digest(marker_weights)}
    return IKInputs(generic, markers, weights, scale_markers, scale_source, factors,
                    str(scale_factors) if scale_factors else None, segments, lab, options)

