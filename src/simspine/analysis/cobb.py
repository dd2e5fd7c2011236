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

(b) Keypoint method (:func:`keypoint_cobb`, :func:`cobb_from_curve`): for inputs that are
keypoints only. The vertebral keypoints Hip (S1), Spine_01 (L5), Spine_02 (L3), Spine_03 (T12/L1),
Spine_04 (T8), Spine_05 (T3) and Neck (C7) are projected onto sagittal planes defined as above
from keypoints: the thorax's left/right axis (RLatissimus − LLatissimus, else RClavicle −
LClavicle) for kyphosis, its mean with the pelvis's (RHip − LHip) for lordosis (either alone when
the other is missing), up = Neck − Hip made perpendicular to the normal. An interpolating cubic
spline (not-a-knot, parameterised by cumulative chord length) runs through the points and the
Cobb angle is the angle between its tangents at the end levels: S1 = Hip and L1 = Spine_03 for
lordosis, T12 = Spine_03 and T3 = Spine_05 for kyphosis. A circular arc through the points gives
back its angle (tests: within 0.5°).

The published keypoints are posterior landmarks (spinous processes, the back of the sacrum: see
:mod:`simspine.biomech.model`), whose curve is not parallel to the vertebral-body axis: on the
model's default pose the raw keypoint angles differ from the geometric ones by a constant
(:func:`landmark_offsets`, computed from the model at first use: +19.1° lordosis and -2.0°
kyphosis). :func:`keypoint_cobb` subtracts it by default (``landmark_correction=True``), so both
methods report the same anatomical quantity; ``raw`` angles are returned alongside. The keypoint
TKA does change with posture, but only through Spine_03 (on lumbar1: T12–L1 motion), since T3, T8
and C7 are all on the rigid torso.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation

#: Keypoints of the sagittal curve (bottom to top) and the vertebra each stands for.
CURVE_KEYPOINTS: tuple[tuple[str, str], ...] = (
    ("Hip", "S1"), ("Spine_01", "L5"), ("Spine_02", "L3"), ("Spine_03", "T12/L1"),
    ("Spine_04", "T8"), ("Spine_05", "T3"), ("Neck", "C7"),
)
#: End levels (indices into CURVE_KEYPOINTS): lordosis S1 -> L1, kyphosis T12 -> T3.
LORDOSIS_ENDS = (0, 3)
KYPHOSIS_ENDS = (3, 5)
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
    """Tangent direction angles (deg) at each of N >= 3 points (N, 2) (u forward, v up) of an
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


def keypoint_cobb_raw(xyz: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Uncorrected keypoint-curve (LLA, TKA) per frame (deg), each (T,), NaN where a point is missing.

    Sagittal planes: kyphosis in the thorax's plane (normal: the thoracic left/right pair,
    latissimus else clavicles); lordosis in the plane whose normal is the mean of the pelvis's
    (hips) and the thorax's left/right axes (either alone when the other is missing), so that
    trunk rotation over the pelvis does not shrink the projected curve."""
    xyz = np.asarray(xyz, float)
    if xyz.ndim == 2:
        xyz = xyz[None]
    names = list(names)
    missing = [n for n, _ in CURVE_KEYPOINTS if n not in names]
    if missing or not any(a in names and b in names for a, b in LR_PAIRS):
        raise ValueError(f"keypoint Cobb angles need {', '.join(n for n, _ in CURVE_KEYPOINTS)} and a left/right "
                         f"pair ({', '.join('/'.join(p) for p in LR_PAIRS)}); missing: {', '.join(missing) or 'pairs'}")
    z_pelvis = _pair_axis(xyz, names, LR_PAIRS[:1])
    z_thorax = _pair_axis(xyz, names, LR_PAIRS[1:])
    z_thorax = np.where(np.isfinite(z_thorax), z_thorax, z_pelvis)
    z_lumbar = np.where(np.isfinite(z_pelvis), z_pelvis + z_thorax, z_thorax)
    up = xyz[:, names.index("Neck")] - xyz[:, names.index("Hip")]
    pts = xyz[:, [names.index(n) for n, _ in CURVE_KEYPOINTS]]  # (T, 7, 3)
    out = []
    for z, ends, sign in ((z_lumbar, LORDOSIS_ENDS, 1.0), (z_thorax, KYPHOSIS_ENDS, -1.0)):
        x, y = plane_axes(z, up)
        uv = np.stack([np.sum(pts * x[:, None], -1), np.sum(pts * y[:, None], -1)], -1)
        ang = np.full(len(xyz), np.nan)
        for t in range(len(xyz)):
            th = curve_tangent_angles(uv[t])
            ang[t] = sign * (th[ends[1]] - th[ends[0]])
        out.append(_wrap(ang))
    return out[0], out[1]


@dataclass
class CobbAngles:
    """Per-frame Cobb angles (deg), each (T,); ``method`` 'geometric' or 'keypoints'; ``raw_*``
    the keypoint angles before the landmark correction (None for the geometric method)."""

    lla: np.ndarray
    tka: np.ndarray
    method: str
    raw_lla: np.ndarray | None = None
    raw_tka: np.ndarray | None = None


def keypoint_cobb(xyz: np.ndarray, names: list[str], landmark_correction: bool = True) -> CobbAngles:
    """Keypoint-method LLA/TKA per frame from keypoints ``xyz`` (T, K, 3) named ``names`` (any
    frame, metres; e.g. SpineTrack-37 in OpenSim's ground frame). ``landmark_correction``
    subtracts :func:`landmark_offsets` (see the module docstring)."""
    lla, tka = keypoint_cobb_raw(xyz, list(names))
    off = landmark_offsets() if landmark_correction else (0.0, 0.0)
    return CobbAngles(lla - off[0], tka - off[1], "keypoints", lla, tka)


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


@cache
def landmark_offsets() -> tuple[float, float]:
    """(LLA, TKA) raw keypoint-method angle minus geometric angle on the generic model's default
    pose (deg): the constant difference between the posterior-landmark curve and the vertebral-body
    axis (module docstring)."""
    from simspine.biomech.fk import Kinematics
    from simspine.skeletons import spinetrack37

    kin = Kinematics()
    kin.set_defaults()
    lla, tka = keypoint_cobb_raw(kin.keypoints()[None], list(spinetrack37().names))
    g_lla, g_tka = endplate_geometry().neutral_deg()
    return float(lla[0] - g_lla), float(tka[0] - g_tka)
