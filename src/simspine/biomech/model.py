"""The spine-aware OpenSim model: locate, strip, add the SpineTrack-37 marker set, cache.

The model is Pose2Sim's ``Model_Pose2Sim_muscles_flex.osim`` (Rajagopal full body with the lumbar
spine of Beaucage-Gauvreau et al.), shipped inside the installed ``pose2sim`` package. For
kinematics we remove what plays no part in it and slows loading and assembly: every force (318
muscles and the rest of the force set) and the contact geometry. Visual meshes are kept (OpenSim
looks them up by file name in pose2sim's ``Geometry`` folder, which :func:`load_model` adds to the
search path).

Constraints: the 20 CoordinateCouplerConstraints are kept by default. 15 of them tie the lumbar
coordinates L4_L5 ... L1_T12 (flex/ext, lateral bending, axial rotation) linearly to L5_S1's three
coordinates, so the lumbar spine has 3 effective degrees of freedom as in the paper; 3 drive the
abdomen and 2 the patellae. ``lumbar_coupling=False`` drops only the 15 lumbar couplers, leaving
18 free lumbar coordinates (kept coupled coordinates stay driven); each freed coordinate gets the
range its coupling implied (slope x the L5_S1 range), widened by half.

Marker set (SpineTrack-37 names, :func:`spinetrack37_markers`):

* 22 body markers (shoulders ... heels) at the places of Pose2Sim's ``Markers_Halpe26.xml``, read
  from the installed pose2sim package.
* Eyes at the places of Pose2Sim's ``Markers_Coco133.xml``. Ears are not in any Pose2Sim marker
  set: they sit on the head at (0, 0.030, +-0.078) m in the head frame, i.e. just outside the
  lateral surface of the skull mesh (half width 0.0768 m at that height and depth), the level
  of the external acoustic meatus, slightly below the eyes (y = 0.047).
* 15 virtual spine-centric markers (Nose, Head, Neck, Hip, Spine_01..05, Latissimus, Clavicle,
  Neck_02, Neck_03) at the bodies and offsets of ``spinetrack37.json`` (the public SimSpine
  release).

Placement check of the virtual vertebral markers (``tests/test_model.py``). The paper says the
markers sit at vertebral-body centroids. Measured against the bone meshes of this model (the
meshes scaled as the model scales them and placed by their attachment frames):

* every published spine marker lies inside the bounding box of the vertebra it names
  (Spine_01 in L5, Spine_02 in L3, Spine_03 in L1, Spine_04 in T8, Spine_05 in T3, Neck in C7,
  Neck_02 in C3/C4, Neck_03 in C1, Hip in the sacrum), on the midline (|z| < 2 mm);
* the lumbar and thoracic ones are, however, at the *posterior* end of the vertebra: Spine_01..03
  lie 2-7 mm in front of the most posterior mesh point (the spinous-process tips) and 55-58 mm
  behind the vertebral-body centroid estimate below; Spine_04/05 44-49 mm behind it; Neck (C7)
  25 mm; the cervical Neck_02/Neck_03 are on the bodies (10 and 5 mm). So the published points
  are posterior (surface-like) vertebral landmarks, not body centroids.

Decision: by default we keep the published offsets (``spine_placement="published"``) because
datasets and detectors trained on SimSpine data use exactly these points, and 2D detectors see
the back of the body. ``spine_placement="body_centroid"`` moves the lumbar/thoracic vertebral
markers (Spine_01..05, Neck) to an estimate of the vertebral-body centroid: the centroid of the
mesh vertices in the anterior 40% of the vertebra's antero-posterior extent, computed from the
meshes at run time (:func:`vertebral_body_centroids`).
"""

from __future__ import annotations

import hashlib
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import atomic_path
from simspine.skeletons import spinetrack37, spinetrack37_info

#: Bump when the preparation changes, so that cached models are rebuilt.
PREPARE_VERSION = "2"
GENERIC_MODEL_NAME = "Model_Pose2Sim_muscles_flex.osim"

#: Ears are in no Pose2Sim marker set; see the module docstring for how these were chosen.
EAR_OFFSET_M = (0.0, 0.030, 0.078)

#: Which vertebra each vertebral marker names, and the mesh that represents it (body, mesh file).
VERTEBRA_OF_MARKER: dict[str, tuple[str, str]] = {
    "Hip": ("pelvis", "sacrum.vtp"),
    "Spine_01": ("lumbar5", "lumbar5.vtp"),
    "Spine_02": ("lumbar3", "lumbar3.vtp"),
    "Spine_03": ("lumbar1", "lumbar1.vtp"),
    "Spine_04": ("torso", "thoracic8_s.vtp"),
    "Spine_05": ("torso", "thoracic3_s.vtp"),
    "Neck": ("torso", "cerv7.vtp"),
    "Neck_02": ("torso", "cerv4sm.vtp"),
    "Neck_03": ("torso", "cerv1sm.vtp"),
}
#: Markers moved by ``spine_placement="body_centroid"`` (thoracolumbar ones; the cervical ones are
#: already on the vertebral bodies).
CENTROID_MOVABLE = ("Spine_01", "Spine_02", "Spine_03", "Spine_04", "Spine_05", "Neck")


@dataclass(frozen=True)
class MarkerPlace:
    """A model marker: ``offset_m`` (3,) in the frame of ``body``, metres."""

    name: str
    body: str
    offset_m: tuple[float, float, float]


@dataclass(frozen=True)
class CoordinateInfo:
    """One model coordinate. ``range`` in radians (rotations) or metres (translations)."""

    name: str
    joint: str
    rotational: bool
    range: tuple[float, float]
    default: float
    dependent: bool
    locked: bool


@dataclass(frozen=True)
class Coupler:
    """One enforced CoordinateCouplerConstraint: ``dependent = scale * function(independent...)``.

    ``function`` is the constraint's ``opensim.Function`` (owned by the model: keep the model
    alive while using it); ``scale`` is the constraint's ``scale_factor``.
    """

    name: str
    dependent: str
    independent: tuple[str, ...]
    function: object
    scale: float


def pose2sim_setup_dir() -> Path:
    """Folder ``Pose2Sim/OpenSim_Setup`` of the installed pose2sim package."""
    try:
        import Pose2Sim
    except ImportError as e:  # pragma: no cover - pose2sim is a pinned dependency
        raise InputError("pose2sim", f"the pose2sim package is not installed ({e})") from None
    d = Path(Pose2Sim.__file__).parent / "OpenSim_Setup"
    if not (d / GENERIC_MODEL_NAME).is_file():
        raise InputError(d, f"{GENERIC_MODEL_NAME} not found in the installed pose2sim package")
    return d


def generic_model_path() -> Path:
    """Path of ``Model_Pose2Sim_muscles_flex.osim`` in the installed pose2sim package."""
    return pose2sim_setup_dir() / GENERIC_MODEL_NAME


def geometry_dir() -> Path:
    """Pose2Sim's folder of bone meshes (``.vtp``)."""
    return pose2sim_setup_dir() / "Geometry"


def _read_marker_xml(path: Path) -> dict[str, MarkerPlace]:
    out = {}
    for m in ET.parse(path).iter("Marker"):
        body = m.findtext("socket_parent_frame").strip().rsplit("/", 1)[-1]
        loc = tuple(float(x) for x in m.findtext("location").split())
        out[m.get("name")] = MarkerPlace(m.get("name"), body, loc)
    return out


def read_vtp_points(path: str | os.PathLike) -> np.ndarray:
    """Vertices (N, 3) of an ASCII VTK PolyData (``.vtp``) mesh, in the mesh's units (metres)."""
    try:
        arr = ET.parse(path).find(".//Points/DataArray")
        return np.array(arr.text.split(), dtype=float).reshape(-1, 3)
    except (OSError, ET.ParseError, AttributeError, ValueError) as e:
        raise InputError(path, f"cannot read mesh vertices ({e})") from None


@cache
def _mesh_placements() -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """mesh file -> (body, scale (3,), translation (3,) of its attachment frame in the body).

    Meshes hang either directly on a body or on a PhysicalOffsetFrame inside the body's
    components (the cervical and thoracic meshes of ``torso``). All those frames carry
    translations only in this model (orientations are zero), so scale-then-translate is exact.
    """
    root = ET.parse(generic_model_path()).getroot()
    out = {}
    for body in root.iter("Body"):
        placed = set()
        for f in body.iter("PhysicalOffsetFrame"):
            t = np.array(f.findtext("translation").split(), dtype=float)
            for mesh in f.iter("Mesh"):
                scale = np.array(mesh.findtext("scale_factors").split(), dtype=float)
                out[mesh.findtext("mesh_file").strip()] = (body.get("name"), scale, t)
                placed.add(id(mesh))
        for mesh in body.iter("Mesh"):
            if id(mesh) not in placed:
                scale = np.array(mesh.findtext("scale_factors").split(), dtype=float)
                out[mesh.findtext("mesh_file").strip()] = (body.get("name"), scale, np.zeros(3))
    return out


@cache
def _weld_offsets() -> dict[str, tuple[str, np.ndarray]]:
    """child body -> (parent body, translation of the child's origin in the parent) for welds.

    Used to express the sacrum mesh in the pelvis frame (the ``Hip`` marker is on the pelvis).
    Both weld frames carry no rotation in this model.
    """
    root = ET.parse(generic_model_path()).getroot()
    out = {}
    for j in root.iter("WeldJoint"):
        frames = {f.get("name"): f for f in j.iter("PhysicalOffsetFrame")}
        par = frames[j.findtext("socket_parent_frame").strip()]
        chi = frames[j.findtext("socket_child_frame").strip()]
        pb = par.findtext("socket_parent").strip().rsplit("/", 1)[-1]
        cb = chi.findtext("socket_parent").strip().rsplit("/", 1)[-1]
        tp = np.array(par.findtext("translation").split(), dtype=float)
        tc = np.array(chi.findtext("translation").split(), dtype=float)
        out[cb] = (pb, tp - tc)
    return out


def mesh_points_in_body(mesh_file: str, body: str | None = None) -> tuple[str, np.ndarray]:
    """(body name, vertices (N, 3) in that body's frame, metres) of a mesh of the generic model.

    ``body`` defaults to the body that carries the mesh; a body welded to it as parent is also
    accepted (sacrum mesh -> pelvis frame).
    """
    place = _mesh_placements().get(mesh_file)
    if place is None:
        raise InputError(generic_model_path(), f"no mesh {mesh_file!r} in the model")
    owner, scale, t = place
    pts = read_vtp_points(geometry_dir() / mesh_file) * scale + t
    if body is None or body == owner:
        return owner, pts
    weld = _weld_offsets().get(owner)
    if weld is None or weld[0] != body:
        raise InputError(generic_model_path(), f"mesh {mesh_file} is on {owner}, not rigidly on {body}")
    return body, pts + weld[1]


def vertebral_body_centroids(anterior_fraction: float = 0.4) -> dict[str, tuple[str, np.ndarray]]:
    """Estimated vertebral-body centroid (body, (3,) m in body frame) per vertebral marker.

    The vertebral body is the anterior part of a vertebra: we take the centroid of the mesh
    vertices whose x (anterior axis of the model's bodies) lies in the anterior
    ``anterior_fraction`` of the mesh's x extent, and put it on the midline (z = 0).
    """
    out = {}
    for name, (body, mesh) in VERTEBRA_OF_MARKER.items():
        body, p = mesh_points_in_body(mesh, body)
        x0, x1 = p[:, 0].min(), p[:, 0].max()
        front = p[p[:, 0] >= x1 - anterior_fraction * (x1 - x0)]
        c = front.mean(axis=0)
        c[2] = 0.0
        out[name] = (body, c)
    return out


def spinetrack37_markers(spine_placement: str = "published") -> list[MarkerPlace]:
    """The 37 model markers in SpineTrack-37 order (see the module docstring for the sources).

    ``spine_placement``: ``"published"`` (SimSpine release offsets) or ``"body_centroid"``.
    """
    if spine_placement not in ("published", "body_centroid"):
        raise InputError(None, f"spine_placement must be 'published' or 'body_centroid', got {spine_placement!r}")
    setup = pose2sim_setup_dir()
    halpe = _read_marker_xml(setup / "Markers_Halpe26.xml")
    coco = _read_marker_xml(setup / "Markers_Coco133.xml")
    vms = spinetrack37_info().virtual_markers
    centroids = vertebral_body_centroids() if spine_placement == "body_centroid" else {}
    out = []
    for name in spinetrack37().names:
        if name in centroids and name in CENTROID_MOVABLE:
            body, c = centroids[name]
            out.append(MarkerPlace(name, body, tuple(float(v) for v in c)))
        elif name in vms:
            out.append(MarkerPlace(name, vms[name].body, tuple(vms[name].offset_m)))
        elif name in ("LEye", "REye"):
            out.append(coco[name])
        elif name in ("LEar", "REar"):
            x, y, z = EAR_OFFSET_M
            # OpenSim's z axis points to the subject's right.
            out.append(MarkerPlace(name, "head", (x, y, -z if name == "LEar" else z)))
        elif name in halpe:
            out.append(halpe[name])
        else:  # pragma: no cover - the table and the marker files are fixed
            raise InputError(None, f"no model place for SpineTrack-37 keypoint {name}")
    return out


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("SIMSPINE_CACHE"):
        return Path(os.environ["SIMSPINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "simspine"


_GEOMETRY_PATH_ADDED = False


def _quiet_opensim():
    """Import opensim with its log at warnings and pose2sim's meshes on the geometry path (so
    tools that load models themselves, like the ScaleTool, find them)."""
    import opensim as osim

    global _GEOMETRY_PATH_ADDED
    osim.Logger.setLevelString("warn")
    if not _GEOMETRY_PATH_ADDED:
        osim.ModelVisualizer.addDirToGeometrySearchPaths(str(geometry_dir()))
        _GEOMETRY_PATH_ADDED = True
    return osim


def prepare_model(
    *,
    lumbar_coupling: bool = True,
    spine_placement: str = "published",
    cache_dir: str | os.PathLike | None = None,
    extra_markers: list[MarkerPlace] | tuple[MarkerPlace, ...] | None = None,
) -> Path:
    """Build (or reuse from the cache) the stripped model with the SpineTrack-37 marker set.

    Returns the path of the prepared ``.osim``. The cache file name holds a hash of the generic
    model's bytes, the marker places and the options, so a changed input gives a new file. The
    file is written atomically (safe with several processes). Cache folder: ``cache_dir``, else
    ``$SIMSPINE_CACHE``, else ``$XDG_CACHE_HOME/simspine`` (``~/.cache/simspine``).

    ``extra_markers``: a lab's markers (:mod:`simspine.biomech.marker_sets`), added after the 37
    SpineTrack-37 markers (which stay, so FK still gives the 37 keypoints); one with a
    SpineTrack-37 name replaces that marker's placement.
    """
    src = generic_model_path()
    markers = spinetrack37_markers(spine_placement)
    if extra_markers:
        bodies = model_body_names()
        bad = [f"{m.name} (body {m.body})" for m in extra_markers if m.body not in bodies]
        if bad:
            raise InputError(None, f"markers on bodies the model does not have: {', '.join(bad)} "
                                   f"(bodies: {', '.join(bodies)})")
        extra = {m.name: m for m in extra_markers}
        markers = [extra.pop(m.name, m) for m in markers] + list(extra.values())
    key = hashlib.sha256()
    key.update(src.read_bytes())
    key.update(json.dumps([PREPARE_VERSION, lumbar_coupling, spine_placement,
                           [(m.name, m.body, m.offset_m) for m in markers]]).encode())
    out = _cache_dir(cache_dir) / f"simspine_model_{key.hexdigest()[:16]}.osim"
    if out.is_file():
        return out

    osim = _quiet_opensim()
    model = osim.Model(str(src))
    model.setName("simspine_Pose2Sim_flex_spinetrack37")
    model.updForceSet().clearAndDestroy()
    model.updContactGeometrySet().clearAndDestroy()
    if not lumbar_coupling:
        cs = model.updConstraintSet()
        coords = model.updCoordinateSet()
        for i in reversed(range(cs.getSize())):
            c = osim.CoordinateCouplerConstraint.safeDownCast(cs.get(i))
            dep = c.getDependentCoordinateName() if c is not None else ""
            if dep.startswith(("L4_L5", "L3_L4", "L2_L3", "L1_L2", "L1_T12")):
                # The freed coordinate had a placeholder range: give it the range the coupling
                # implied (slope x the L5_S1 range), widened by half, before dropping the coupler.
                slope = osim.LinearFunction.safeDownCast(c.getFunction()).getSlope()
                ref = coords.get(c.getIndependentCoordinateNames().get(0))
                lo, hi = sorted((slope * ref.getRangeMin(), slope * ref.getRangeMax()))
                pad = 0.25 * (hi - lo)
                coords.get(dep).setRangeMin(lo - pad)
                coords.get(dep).setRangeMax(hi + pad)
                cs.remove(i)
    replace_markers(model, markers)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        model.printToXML(str(tmp))
    return out


@cache
def model_body_names() -> tuple[str, ...]:
    """Names of the generic model's bodies (where markers can sit), model order."""
    root = ET.parse(generic_model_path()).getroot()
    return tuple(b.get("name") for b in root.iter("Body"))


def replace_markers(model, markers: list[MarkerPlace]) -> None:
    """Replace the marker set of ``model`` (an ``opensim.Model``) by ``markers``."""
    osim = _quiet_opensim()
    model.updMarkerSet().clearAndDestroy()
    for m in markers:
        model.addMarker(osim.Marker(m.name, model.getBodySet().get(m.body), osim.Vec3(*m.offset_m)))
    model.finalizeConnections()


def load_model(path: str | os.PathLike | None = None, **prepare_kwargs):
    """An ``opensim.Model`` (system not yet initialised) from ``path`` or the prepared model."""
    osim = _quiet_opensim()
    path = Path(path) if path is not None else prepare_model(**prepare_kwargs)
    if not Path(path).is_file():
        raise InputError(path, "model file not found")
    try:
        return osim.Model(str(path))
    except Exception as e:  # OpenSim raises RuntimeError with its own text
        raise InputError(path, f"OpenSim cannot load this model ({e})") from None


def coordinate_info(model) -> list[CoordinateInfo]:
    """All coordinates of ``model`` in model order (initialises the system if needed)."""
    state = model.initSystem() if not model.isValidSystem() else model.getWorkingState()
    out = []
    cs = model.getCoordinateSet()
    for i in range(cs.getSize()):
        c = cs.get(i)
        out.append(CoordinateInfo(
            name=c.getName(), joint=c.getJoint().getName(),
            rotational=c.getMotionType() == 1,
            range=(float(c.getRangeMin()), float(c.getRangeMax())),
            default=float(c.getDefaultValue()),
            dependent=bool(c.isDependent(state)), locked=bool(c.get_locked()),
        ))
    return out


def free_coordinates(model) -> list[CoordinateInfo]:
    """The independent, unlocked coordinates (what IK solves for / a motion generator drives)."""
    return [c for c in coordinate_info(model) if not c.dependent and not c.locked]


def coupler_constraints(model) -> list[Coupler]:
    """The enforced CoordinateCouplerConstraints of ``model`` (an ``opensim.Model``), in order."""
    import opensim as osim

    out = []
    cs = model.getConstraintSet()
    for i in range(cs.getSize()):
        c = osim.CoordinateCouplerConstraint.safeDownCast(cs.get(i))
        if c is None or not c.get_isEnforced():
            continue
        ind = c.getIndependentCoordinateNames()
        out.append(Coupler(
            name=c.getName(), dependent=c.getDependentCoordinateName(),
            independent=tuple(ind.get(k) for k in range(ind.getSize())), function=c.getFunction(),
            scale=osim.PropertyHelper.getValueDouble(c.getPropertyByName("scale_factor")),
        ))
    return out
