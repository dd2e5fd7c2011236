"""Lumbar lordosis (L1–S1) and thoracic kyphosis (T3–T12) per frame by Cobb's method, two ways.

Both methods measure, in the **sagittal plane** of the body, the angle between the directions of
two end vertebrae (Cobb's method: the angle between the end vertebrae's endplates equals the
angle between their normals, i.e. the change of the spine's tangent from one end to the other).
Angles are degrees; positive lordosis = concave backwards (the spine's tangent turns backwards
going up from S1 to L1); positive kyphosis = concave forwards (the tangent turns forwards going up
from T12 to T3). The in-plane direction angle of a cranially pointing vector ``d`` is
``theta = atan2(-d . x, d . y)`` (x forward, y up in the plane), so

* ``LLA = theta(L1) - theta(S1)``, ``TKA = theta(T12) - theta(T3)``.

(a) Geometric method (:func:`geometric_cobb`, :func:`geometric_cobb_from_segments`): from the
model's vertebral geometry. The endplate normals are constant unit vectors fixed in the bodies
that carry the vertebrae (sacrum/pelvis for S1, ``lumbar1`` for L1, ``torso`` for T12 and T3),
computed once from the bone meshes of ``Model_Pose2Sim_muscles_flex.osim`` in the default pose
(every joint angle zero, all body frames parallel to the pelvis), see :func:`endplate_geometry`:

* the meshes are too coarse (about 200 vertices per vertebra) to fit individual endplate planes
  reliably, so each vertebra's direction is the tangent of the **vertebral-body axis**: a
  degree-5 least-squares polynomial x(y) through the vertebral-body centroids of L5 ... L1,
  T12 ... T1 and C7 (centroid of the mesh vertices in the anterior 40% of each vertebra's
  antero-posterior extent, the same estimate as
  :func:`simspine.biomech.model.vertebral_body_centroids`), evaluated at the end vertebra's
  centroid. The "endplate" of L1, T12 and T3 is the plane perpendicular to that tangent (the
  vertebra's mid-body plane; it differs from the superior or inferior endplate by half the
  vertebra's wedge, which the meshes do not resolve).
* S1: the sacral plate, the least-squares plane of the sacrum-mesh vertices within 30 mm of the
  L5_S1 joint centre (the plate faces that joint); its normal, pointing cranially.
* Sagittal planes: kyphosis in the torso's x-y plane; lordosis in the plane whose normal is the
  mean of the pelvis's and the torso's z axes (the subject's right), so that trunk rotation over
  the pelvis does not shrink the projected curve. A frame's angles depend only on the
  orientations of lumbar1 and torso relative to the pelvis (``segment_euler_deg`` of
  :mod:`simspine.biomech.fk`, or body rotations from FK).

What this means: lordosis changes exactly with the intervertebral flexion/extension between S1
and L1 (L5_S1 ... L1_L2; positive Flex_Ext = extension increases it), which the couplers tie to
L5_S1_Flex_Ext. **Thoracic kyphosis cannot change with posture in this model**: T3 and T12 are
both parts of the rigid ``torso`` body, so the geometric TKA is one constant of the model's
(generic, unscaled) geometry for every frame (32.7°; the default pose has LLA 44.3°); lateral bending
and axial rotation of lumbar1 relative to the pelvis change the projected LLA slightly.

(b) Keypoint method (:func:`keypoint_cobb`, :func:`keypoint_cobb_raw`): for inputs that are
keypoints only. The vertebral keypoints Hip (S1), Spine_01 (L5), Spine_02 (L3), Spine_03 (T12/L1),
Spine_04 (T8), Spine_05 (T3) and Neck (C7) are projected onto sagittal planes defined as above
from keypoints: the thorax's left/right axis (RLatissimus − LLatissimus, else RClavicle −
LClavicle) for kyphosis, its mean with the pelvis's (RHip − LHip) for lordosis (either alone when
the other is missing), up = Neck − Hip made perpendicular to the normal. Each end vertebra's
direction is read from the **chords** between keypoints at its level, not from a curve fitted
through all of them:

* L1 (upper end of lordosis): the chord between its neighbours, Spine_02 (L3) -> Spine_04 (T8)
  (a central difference: the L1 body's orientation lies between those of L2 and T12);
* S1 (lower end): the sacrum is part of the rigid pelvis, so its direction is the pelvis's own
  sagittal reference, the hip-joint-centre midpoint ((LHip + RHip) / 2) -> Hip, measured in the
  pelvis's plane (normal RHip − LHip) and turned there by a constant (the angle the sacral plate
  makes with that line, as in the pelvic-incidence construction), then projected onto the
  lordosis plane like the geometric S1 normal; without the hips, the chord Hip -> Spine_01;
* T12 (lower end of kyphosis): the first thoracic chord, Spine_03 (T12/L1) -> Spine_04 (T8);
* T3 (upper end): the chord between its neighbours, Spine_04 (T8) -> Neck (C7), both on the
  thorax.

``LLA = theta(L1) - theta(S1)``, ``TKA = theta(T12) - theta(T3)`` as above. The raw angles
(:func:`keypoint_cobb_raw`: the turns of the chords, S1 from Hip -> Spine_01) are, on a smooth
curve, the tangent changes between the chords' midpoints (exact on a circular arc; tests). The
published keypoints are posterior landmarks (spinous processes, the back of the sacrum: see
:mod:`simspine.biomech.model`), so each chord makes a constant angle with its end vertebra's
geometric direction. :func:`keypoint_cobb` adds these per-level constants
(:class:`LevelOffsets`, from :func:`level_offsets`): measured on the default pose of the model
that placed the keypoints (``model=``: the subject's scaled or marker-registered model; ``simspine
analyze`` uses ``model/model_registered.osim``, else ``model_scaled.osim``, of an ``annotate`` or
``ik`` folder), else of the generic model. Per level rather than one global constant, because the
correction belongs to each end's landmarks: a subject's landmarks sit up to ~1-2 cm from the
generic placement (marker registration), which moves a 6-15 cm chord by several degrees (the demo's
generic-model TKA constants are 7° off), and a constant measured on a whole fitted curve does not
carry over.

Why chords: a spline through the seven points extrapolates its end tangents from every point, so
its S1 tangent turned with lumbar flexion (-16% of the LLA change, against the sacrum's 0) and its
T12 tangent with L1; LLA and TKA then differed from the geometric ones by -4.6° (RMS 5.7°) and
+3.8° on a picking-up motion. With the chords, on the generic model's synthetic actions (4 s, two
seeds) the keypoint-minus-geometric means are within ±0.8° (RMS ≤ 1.1°; walking -0.1°, pickup
+0.5°, sit-down +0.6°, twist -0.8°) for LLA and ≤ 0.6° for TKA; the remaining difference grows
with flexion (the L3 -> T8 chord turns 0.98° per degree of L1 flexion) and with lumbar axial
rotation (each end projected from its own plane).

What each method can and cannot show: the geometric TKA is the rigid torso's constant, whatever
the posture. The keypoint TKA is defined to match it (T12 from the first thoracic chord, T3 between
two thoracic points): it moves only with the T12/L1 landmark relative to the thorax (T12–L1
flexion; 0.6° over a full bend) and with noise, so neither method measures a change of thoracic
kyphosis with posture on this model's outputs; for keypoints from another source (a detector, a
lifted 3D pose, a model with a flexible thorax) the keypoint TKA does follow the T12/L1, T8 and C7
landmarks. The keypoint LLA follows lumbar flexion through the L3 and T8 landmarks and the
pelvis; it cannot see how flexion is shared between L1 and the levels below it (one landmark per
two levels), which the geometric method reads from the model's bodies. :func:`cobb_from_curve`
keeps the spline tangent method for densely sampled curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

#: Keypoints of the sagittal curve (bottom to top) and the vertebra each stands for.
CURVE_KEYPOINTS: tuple[tuple[str, str], ...] = (
    ("Hip", "S1"), ("Spine_01", "L5"), ("Spine_02", "L3"), ("Spine_03", "T12/L1"),
    ("Spine_04", "T8"), ("Spine_05", "T3"), ("Neck", "C7"),
)
#: Chords (from, to) giving each end vertebra's direction (module docstring); S1 prefers the
#: pelvis reference (hip-joint-centre midpoint -> Hip) and falls back to this chord.
END_CHORDS: dict[str, tuple[str, str]] = {
    "S1": ("Hip", "Spine_01"), "L1": ("Spine_02", "Spine_04"),
    "T12": ("Spine_03", "Spine_04"), "T3": ("Spine_04", "Neck"),
}
#: Left/right keypoint pairs giving the sagittal plane's normal, in order of preference.
LR_PAIRS = (("LHip", "RHip"), ("LLatissimus", "RLatissimus"), ("LClavicle", "RClavicle"))
#: Vertebra meshes of the body-axis curve, bottom to top.
AXIS_MESHES = ("lumbar5", "lumbar4", "lumbar3", "lumbar2", "lumbar1",
               *(f"thoracic{i}_s" for i in range(12, 0, -1)), "cerv7")
SACRAL_PLATE_RADIUS_M = 0.030
AXIS_POLY_DEGREE = 5


def direction_angle_deg(d: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """In-plane angle (deg) of cranial vectors ``d`` (..., 3): ``atan2(-d.x, d.y)`` (x forward, y up)."""
    return np.degrees(np.arctan2(-np.sum(d * x, -1), np.sum(d * y, -1)))


def _wrap(a: np.ndarray) -> np.ndarray:
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


# ----------------------------------------------------------------------------- keypoint method

def curve_tangent_angles(uv: np.ndarray) -> np.ndarray:
    """(A general tool for densely sampled curves; the keypoint method uses chords, see the module
    docstring.) Tangent direction angles (deg) at each of N >= 3 points (N, 2) (u forward, v up) of an
    interpolating not-a-knot cubic spline parameterised by cumulative chord length."""
    seg = np.linalg.norm(np.diff(uv, axis=0), axis=1)
    if not (np.all(np.isfinite(uv)) and np.all(seg > 1e-9)):
        return np.full(len(uv), np.nan)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    d = CubicSpline(s, uv, bc_type="not-a-knot" if len(uv) > 3 else "natural")(s, 1)
    return np.degrees(np.arctan2(-d[:, 0], d[:, 1]))


def cobb_from_curve(uv: np.ndarray, lower: int, upper: int) -> float:
    """Cobb angle (deg) between the tangents at points ``lower`` and ``upper`` of the curve through
    ``uv`` (N, 2) in the sagittal plane (u forward, v up, points ordered bottom to top):
    ``theta(upper) - theta(lower)``; positive when the tangent turns backwards going up."""
    th = curve_tangent_angles(np.asarray(uv, float))
    return float(_wrap(th[upper] - th[lower]))


def plane_axes(z: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane axes (x forward, y up), each (T, 3), of the plane with normal ``z`` (T, 3) (the
    subject's right; need not be unit): y = ``up`` made perpendicular to z, x = y cross z."""
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    y = up - np.sum(up * z, -1, keepdims=True) * z
    y = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return np.cross(y, z), y


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _pair_axis(xyz: np.ndarray, names: list[str], pairs) -> np.ndarray:
    """(T, 3) unit left->right axis from the first pair of ``pairs`` present (NaN frames of one
    pair filled from the next); NaN where none is available."""
    z = np.full((xyz.shape[0], 3), np.nan)
    for left, right in pairs:
        if left in names and right in names:
            v = xyz[:, names.index(right)] - xyz[:, names.index(left)]
            fill = ~np.isfinite(z).all(1) & np.isfinite(v).all(1)
            z[fill] = v[fill]
    return _unit(z)


@dataclass
class KeypointChords:
    """Per-frame chord direction angles (deg, each (T,)) of the keypoint method.

    ``l1`` Spine_02 -> Spine_04 and ``s1_chord`` Hip -> Spine_01 in the lordosis plane; ``t12``
    Spine_03 -> Spine_04 and ``t3`` Spine_04 -> Neck in the thorax's plane; ``s1_pelvis`` the
    cranial unit vector (T, 3) of the pelvis's sagittal reference (hip-joint-centre midpoint ->
    Hip, in the plane normal to RHip - LHip) and ``pelvis_z`` that normal (both NaN without the
    hips); ``lordosis_axes``/``thorax_axes`` the (x, y) in-plane axes (T, 3) each."""

    l1: np.ndarray
    s1_chord: np.ndarray
    t12: np.ndarray
    t3: np.ndarray
    s1_pelvis: np.ndarray
    pelvis_z: np.ndarray
    lordosis_axes: tuple[np.ndarray, np.ndarray]
    thorax_axes: tuple[np.ndarray, np.ndarray]


def _check_names(names: list[str]) -> None:
    missing = [n for n, _ in CURVE_KEYPOINTS if n not in names]
    if missing or not any(a in names and b in names for a, b in LR_PAIRS):
        raise ValueError(f"keypoint Cobb angles need {', '.join(n for n, _ in CURVE_KEYPOINTS)} and a left/right "
                         f"pair ({', '.join('/'.join(p) for p in LR_PAIRS)}); missing: {', '.join(missing) or 'pairs'}")


def keypoint_chords(xyz: np.ndarray, names: list[str]) -> KeypointChords:
    """The chord directions of the keypoint method for keypoints ``xyz`` (T, K, 3) or (K, 3)."""
    xyz = np.asarray(xyz, float)
    if xyz.ndim == 2:
        xyz = xyz[None]
    names = list(names)
    _check_names(names)
    z_pelvis = _pair_axis(xyz, names, LR_PAIRS[:1])
    z_thorax = _pair_axis(xyz, names, LR_PAIRS[1:])
    z_thorax = np.where(np.isfinite(z_thorax), z_thorax, z_pelvis)
    z_lumbar = np.where(np.isfinite(z_pelvis), z_pelvis + z_thorax, z_thorax)
    p = {n: xyz[:, names.index(n)] for n, _ in CURVE_KEYPOINTS}
    up = p["Neck"] - p["Hip"]
    lx, ly = plane_axes(z_lumbar, up)
    tx, ty = plane_axes(z_thorax, up)
    s1p = np.full_like(up, np.nan)
    if "LHip" in names and "RHip" in names:
        v = p["Hip"] - 0.5 * (xyz[:, names.index("LHip")] + xyz[:, names.index("RHip")])
        s1p = _unit(v - np.sum(v * z_pelvis, -1, keepdims=True) * z_pelvis)
    def chord(level: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a, b = END_CHORDS[level]
        return direction_angle_deg(p[b] - p[a], x, y)

    return KeypointChords(
        l1=chord("L1", lx, ly), s1_chord=chord("S1", lx, ly), t12=chord("T12", tx, ty), t3=chord("T3", tx, ty),
        s1_pelvis=s1p, pelvis_z=z_pelvis, lordosis_axes=(lx, ly), thorax_axes=(tx, ty))


def keypoint_cobb_raw(xyz: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Uncorrected keypoint (LLA, TKA) per frame (deg), each (T,), NaN where a point is missing:
    the turn of the keypoint chords, ``LLA = theta(Spine_02 -> Spine_04) - theta(Hip -> Spine_01)``
    in the lordosis plane and ``TKA = theta(Spine_03 -> Spine_04) - theta(Spine_04 -> Neck)`` in
    the thorax's plane (module docstring). On a circular arc each chord is parallel to the tangent
    at the arc's midpoint between its two points, so these are the tangent changes between those
    midpoints."""
    c = keypoint_chords(xyz, names)
    return _wrap(c.l1 - c.s1_chord), _wrap(c.t12 - c.t3)


@dataclass(frozen=True)
class LevelOffsets:
    """Constant angles (deg) from each keypoint chord to the end vertebra's geometric direction
    (``geometric - chord``), measured on a model's default pose (:func:`level_offsets`).

    ``s1_pelvis``: S1 normal minus the pelvis reference (hip-joint-centre midpoint -> Hip) in the
    pelvis's sagittal plane; ``s1_chord``: S1 normal minus Hip -> Spine_01 (used where the hips
    are missing); ``l1``: L1 axis minus Spine_02 -> Spine_04; ``t12``: T12 axis minus
    Spine_03 -> Spine_04; ``t3``: T3 axis minus Spine_04 -> Neck. ``model``: the model they were
    measured on (None: the generic model)."""

    s1_pelvis: float
    s1_chord: float
    l1: float
    t12: float
    t3: float
    model: str | None = None

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class CobbAngles:
    """Per-frame Cobb angles (deg), each (T,); ``method`` 'geometric' or 'keypoints'; ``raw_*``
    the keypoint angles before the landmark correction (None for the geometric method);
    ``offsets`` the per-level constants the keypoint angles were corrected with."""

    lla: np.ndarray
    tka: np.ndarray
    method: str
    raw_lla: np.ndarray | None = None
    raw_tka: np.ndarray | None = None
    offsets: LevelOffsets | None = None


def _rotate_in_plane(v: np.ndarray, z: np.ndarray, deg: float) -> np.ndarray:
    """``v`` (T, 3), perpendicular to the unit normals ``z`` (T, 3), turned by ``deg`` about z
    (positive: the direction angle of :func:`direction_angle_deg` grows)."""
    a = np.radians(deg)
    return v * np.cos(a) + np.cross(z, v) * np.sin(a)


def keypoint_cobb(xyz: np.ndarray, names: list[str], landmark_correction: bool = True,
                  model=None, offsets: LevelOffsets | None = None) -> CobbAngles:
    """Keypoint-method LLA/TKA per frame from keypoints ``xyz`` (T, K, 3) named ``names`` (any
    frame, metres; e.g. SpineTrack-37 in OpenSim's ground frame).

    ``landmark_correction`` turns each keypoint chord into its end vertebra's direction with the
    per-level constants of :func:`level_offsets` (module docstring); they are measured on
    ``model`` (an ``.osim`` path: the subject's scaled/registered model whose forward kinematics
    gave the keypoints) or, by default, on the generic model; ``offsets`` gives them directly.
    Without the correction the raw chord angles of :func:`keypoint_cobb_raw` are returned."""
    c = keypoint_chords(xyz, list(names))
    raw_lla, raw_tka = _wrap(c.l1 - c.s1_chord), _wrap(c.t12 - c.t3)
    if not landmark_correction:
        return CobbAngles(raw_lla, raw_tka, "keypoints", raw_lla, raw_tka)
    o = offsets or level_offsets(model)
    # S1: the pelvis is rigid, so its sagittal reference turned by the constant gives the sacral
    # plate's normal in the pelvis's own plane; then projected like the geometric method's
    s1 = _rotate_in_plane(c.s1_pelvis, c.pelvis_z, o.s1_pelvis)
    th_s1 = direction_angle_deg(s1, *c.lordosis_axes)
    th_s1 = np.where(np.isfinite(th_s1), th_s1, c.s1_chord + o.s1_chord)
    lla = _wrap(c.l1 + o.l1 - th_s1)
    tka = _wrap((c.t12 + o.t12) - (c.t3 + o.t3))
    return CobbAngles(lla, tka, "keypoints", raw_lla, raw_tka, o)


# ---------------------------------------------------------------------------- geometric method

@dataclass(frozen=True)
class EndplateGeometry:
    """Cranial unit normals (3,) of the end vertebrae, each in the frame of the body carrying it."""

    s1: np.ndarray   # pelvis frame (the sacrum is welded to it without rotation)
    l1: np.ndarray   # lumbar1 frame
    t12: np.ndarray  # torso frame
    t3: np.ndarray   # torso frame

    def neutral_deg(self) -> tuple[float, float]:
        """(LLA, TKA) of the default pose (deg)."""
        x, y = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
        th = {k: float(direction_angle_deg(getattr(self, k), x, y)) for k in ("s1", "l1", "t12", "t3")}
        return th["l1"] - th["s1"], th["t12"] - th["t3"]


def _plane_normal(p: np.ndarray) -> np.ndarray:
    q = p - p.mean(0)
    n = np.linalg.eigh(q.T @ q)[1][:, 0]
    return n * np.sign(n[1])


@cache
def endplate_geometry() -> EndplateGeometry:
    """Endplate normals from the generic model's meshes in its default pose (module docstring).

    In the default pose every body frame of the model is parallel to the pelvis (the joint frames
    carry no rotation), so directions computed there in the pelvis frame are also the directions
    in each body's own frame."""
    from simspine.biomech.fk import Kinematics
    from simspine.biomech.model import mesh_points_in_body

    kin = Kinematics()
    kin.set_defaults()
    rp, op = kin.body_rotation("pelvis"), kin.body_origin("pelvis")

    def to_pelvis(body: str, p: np.ndarray) -> np.ndarray:
        g = p @ kin.body_rotation(body).T + kin.body_origin(body)
        return (g - op) @ rp

    cents = []
    for mesh in AXIS_MESHES:
        body, p = mesh_points_in_body(mesh + ".vtp")
        x0, x1 = p[:, 0].min(), p[:, 0].max()
        c = p[p[:, 0] >= x1 - 0.4 * (x1 - x0)].mean(0)
        cents.append(to_pelvis(body, c[None])[0])
    cents = np.array(cents)
    poly = np.polynomial.Polynomial.fit(cents[:, 1], cents[:, 0], AXIS_POLY_DEGREE)
    dpoly = poly.deriv()

    def axis_at(mesh: str) -> np.ndarray:
        yv = cents[AXIS_MESHES.index(mesh), 1]
        d = np.array([dpoly(yv), 1.0, 0.0])
        return d / np.linalg.norm(d)

    body, p = mesh_points_in_body("sacrum.vtp")
    ps = to_pelvis(body, p)
    joint = to_pelvis("lumbar5", np.zeros((1, 3)))[0]
    plate = ps[np.linalg.norm(ps - joint, axis=1) < SACRAL_PLATE_RADIUS_M]
    s1 = _plane_normal(plate)
    s1[2] = 0.0  # the model is left/right symmetric: keep the normal in the sagittal plane
    s1 /= np.linalg.norm(s1)
    # default-pose directions in the pelvis frame -> each body's frame (R_pelvis^T R_body = I
    # here, but apply it so that a model whose default pose is not neutral stays correct)
    def in_body(body: str, d: np.ndarray) -> np.ndarray:
        r = rp.T @ kin.body_rotation(body)
        return r.T @ d

    return EndplateGeometry(s1=s1, l1=in_body("lumbar1", axis_at("lumbar1")),
                            t12=in_body("torso", axis_at("thoracic12_s")), t3=in_body("torso", axis_at("thoracic3_s")))


def geometric_cobb_from_segments(r_lumbar1: np.ndarray, r_torso: np.ndarray,
                                 geometry: EndplateGeometry | None = None) -> CobbAngles:
    """Geometric LLA/TKA (deg, (T,)) from the orientations of lumbar1 and torso relative to the
    pelvis, ``R_pelvis^T R_body`` (T, 3, 3) each.

    Sagittal planes as in the keypoint method: kyphosis in the torso's x-y plane (so it is the
    model's constant), lordosis in the plane whose normal is the mean of the pelvis's and the
    torso's z axes."""
    g = geometry or endplate_geometry()
    r_lumbar1, r_torso = np.asarray(r_lumbar1, float), np.asarray(r_torso, float)
    ez = np.array([0.0, 0.0, 1.0])
    z_torso, y_torso = r_torso[:, :, 2], r_torso[:, :, 1]
    n_s1 = np.broadcast_to(g.s1, z_torso.shape)
    n_l1 = np.einsum("tij,j->ti", r_lumbar1, g.l1)
    n_t12 = np.einsum("tij,j->ti", r_torso, g.t12)
    n_t3 = np.einsum("tij,j->ti", r_torso, g.t3)
    x, y = plane_axes(ez + z_torso, np.array([0.0, 1.0, 0.0]) + y_torso)
    lla = direction_angle_deg(n_l1, x, y) - direction_angle_deg(n_s1, x, y)
    x, y = plane_axes(z_torso, y_torso)
    tka = direction_angle_deg(n_t12, x, y) - direction_angle_deg(n_t3, x, y)
    return CobbAngles(_wrap(lla), _wrap(tka), "geometric")


def geometric_cobb_from_euler(segment_euler_deg: np.ndarray, segment_bodies: list[str]) -> CobbAngles:
    """Geometric LLA/TKA from ``segment_euler_deg`` (T, S, 3) of :class:`simspine.biomech.fk.SpineRotations`
    (intrinsic Z-X-Y of R_pelvis^T R_body, deg; NaN rows give NaN angles)."""
    from simspine.biomech.fk import EULER_SEQUENCE

    e = np.asarray(segment_euler_deg, float)
    T = e.shape[0]

    def mats(body: str) -> np.ndarray:
        a = e[:, segment_bodies.index(body)]
        ok = np.isfinite(a).all(1)
        out = np.full((T, 3, 3), np.nan)
        if ok.any():
            out[ok] = Rotation.from_euler(EULER_SEQUENCE, a[ok], degrees=True).as_matrix()
        return out

    return geometric_cobb_from_segments(mats("lumbar1"), mats("torso"))


def geometric_cobb(kin, coordinates) -> CobbAngles:
    """Geometric LLA/TKA for every row of a :class:`simspine.biomech.fk.CoordinateTable` posed on
    ``kin`` (:class:`simspine.biomech.fk.Kinematics`)."""
    free = {c.name for c in kin.free_coordinates}
    cols = [j for j, n in enumerate(coordinates.names) if n in free]
    vals = np.asarray(coordinates.values, float)
    T = vals.shape[0]
    r1, rt = np.empty((T, 3, 3)), np.empty((T, 3, 3))
    kin.set_defaults()
    for t in range(T):
        kin.set_coordinates({coordinates.names[j]: vals[t, j] for j in cols})
        rp = kin.body_rotation("pelvis")
        r1[t] = rp.T @ kin.body_rotation("lumbar1")
        rt[t] = rp.T @ kin.body_rotation("torso")
    return geometric_cobb_from_segments(r1, rt)


def _model_key(model) -> tuple[str, float] | None:
    if model is None:
        return None
    path = Path(model).resolve()
    return str(path), path.stat().st_mtime


def level_offsets(model=None) -> LevelOffsets:
    """Per-level constants of the keypoint method (:class:`LevelOffsets`), measured on the default
    pose (every coordinate zero) of ``model`` (an ``.osim`` path; None: the generic model): the
    geometric end directions (:func:`endplate_geometry`, fixed in the bodies, so the same for a
    scaled model) against the chords of that model's own keypoints. Cached per file."""
    return _level_offsets(_model_key(model))


@cache
def _level_offsets(key: tuple[str, float] | None) -> LevelOffsets:
    from simspine.biomech.fk import Kinematics
    from simspine.skeletons import spinetrack37

    kin = Kinematics(None if key is None else key[0])
    kin.set_defaults()
    c = keypoint_chords(kin.keypoints()[None], list(spinetrack37().names))
    g = endplate_geometry()
    n = {k: kin.body_rotation(b) @ getattr(g, k)
         for k, b in (("s1", "pelvis"), ("l1", "lumbar1"), ("t12", "torso"), ("t3", "torso"))}

    def th(v, axes):
        return float(direction_angle_deg(v[None], *axes)[0])

    lax = (c.lordosis_axes[0][:1], c.lordosis_axes[1][:1])
    tax = (c.thorax_axes[0][:1], c.thorax_axes[1][:1])
    z = c.pelvis_z[0]
    px, py = np.cross(c.s1_pelvis[0], z), c.s1_pelvis[0]  # the pelvis plane with y along its reference
    s1p = float(direction_angle_deg(n["s1"] - (n["s1"] @ z) * z, px, py)) if np.isfinite(z).all() else np.nan
    return LevelOffsets(
        s1_pelvis=s1p,
        s1_chord=th(n["s1"], lax) - float(c.s1_chord[0]),
        l1=th(n["l1"], lax) - float(c.l1[0]),
        t12=th(n["t12"], tax) - float(c.t12[0]),
        t3=th(n["t3"], tax) - float(c.t3[0]),
        model=None if key is None else key[0])


def landmark_offsets(model=None) -> tuple[float, float]:
    """(LLA, TKA) raw keypoint angle (:func:`keypoint_cobb_raw`) minus geometric angle on the
    default pose of ``model`` (None: the generic model), deg: how far the uncorrected chord
    angles of the posterior landmarks are from the vertebral-body geometry."""
    o = level_offsets(model)
    return -(o.l1 - o.s1_chord), -(o.t12 - o.t3)
