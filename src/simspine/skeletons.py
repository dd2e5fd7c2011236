"""Keypoint layouts: SpineTrack-37 (the order used everywhere), Human3.6M 32 and 17 joints.

SpineTrack-37 facts (names, parents, swaps, regions, OKS sigmas, subsets, anatomical labels,
virtual-marker placements, IK weights) come from ``data/spinetrack37.json``; see
``data/SOURCES.md`` for where each number comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np

from simspine.errors import InputError


@dataclass(frozen=True)
class VirtualMarker:
    """A marker fixed on a model body: ``offset_m`` (3,) in the body's frame, metres."""

    body: str
    offset_m: tuple[float, float, float]


@dataclass(frozen=True)
class Skeleton:
    """An ordered keypoint layout.

    ``parents[i]`` is the index of keypoint ``i``'s parent (-1 for the root); ``swap[i]`` is the
    index of its left/right mirror (``i`` itself for midline points).
    """

    name: str
    names: tuple[str, ...]
    parents: tuple[int, ...]
    swap: tuple[int, ...]
    regions: tuple[str, ...] = ()
    oks_sigmas: tuple[float, ...] = ()
    anatomy: tuple[str | None, ...] = ()
    subsets: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of keypoint ``name``; raises a clear error for unknown names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(None, f"unknown keypoint name {name!r} for skeleton {self.name} "
                                   f"(known: {', '.join(self.names)})") from None

    def indices(self, names) -> np.ndarray:
        """Indices of several keypoint names, in the order given."""
        return np.array([self.index(n) for n in names], dtype=int)

    def subset(self, key: str) -> np.ndarray:
        """Indices of a named subset (``body``, ``feet``, ``spine``, ``lumbar``, ...)."""
        if key not in self.subsets:
            raise InputError(None, f"unknown subset {key!r} for skeleton {self.name} "
                                   f"(known: {', '.join(sorted(self.subsets))})")
        return np.asarray(self.subsets[key], dtype=int)

    def bones(self) -> list[tuple[int, int]]:
        """(parent, child) pairs for drawing."""
        return [(p, i) for i, p in enumerate(self.parents) if p >= 0]

    def flip_lr(self, kpts: np.ndarray) -> np.ndarray:
        """Reorder ``kpts`` (..., K, D) so that left and right keypoints trade places."""
        return np.asarray(kpts)[..., list(self.swap), :]


@dataclass(frozen=True)
class SpineTrackInfo:
    """SpineTrack-37 extras tied to the biomechanical model."""

    virtual_markers: dict[str, VirtualMarker]
    ik_weights: dict[str, float]
    kinematic_axes: dict[str, tuple[str, ...]]
    coordinate_tasks: tuple[dict, ...]


def _load_json(name: str) -> dict:
    with resources.files("simspine.data").joinpath(name).open("r", encoding="utf-8") as f:
        return json.load(f)


@cache
def spinetrack37() -> Skeleton:
    """The SpineTrack-37 skeleton (ids 0-36)."""
    d = _load_json("spinetrack37.json")
    kps = sorted(d["keypoints"], key=lambda k: k["id"])
    names = tuple(k["name"] for k in kps)
    swap = tuple(names.index(k["swap"]) if k["swap"] else i for i, k in enumerate(kps))
    subsets = {k: tuple(v) for k, v in d["subsets"].items()}
    subsets.update({k: tuple(v) for k, v in d["regions_for_3d_metrics"].items()})
    return Skeleton(
        name="SpineTrack-37",
        names=names,
        parents=tuple(int(k["parent"]) for k in kps),
        swap=swap,
        regions=tuple(k["region"] for k in kps),
        oks_sigmas=tuple(float(k["oks_sigma"]) for k in kps),
        anatomy=tuple(k["anatomy"] for k in kps),
        subsets=subsets,
    )


@cache
def spinetrack37_info() -> SpineTrackInfo:
    """Virtual-marker placements, IK weights and kinematic axes of SpineTrack-37."""
    d = _load_json("spinetrack37.json")
    vms, weights, axes = {}, {}, {}
    for k in d["keypoints"]:
        if k["virtual_marker"]:
            vm = k["virtual_marker"]
            vms[k["name"]] = VirtualMarker(vm["body"], tuple(float(x) for x in vm["offset_m"]))
        weights[k["name"]] = float(k["ik_weight"])
        axes[k["name"]] = tuple(k["kinematic_axes"])
    return SpineTrackInfo(vms, weights, axes, tuple(d["ik_coordinate_tasks"]))


# Human3.6M 32-joint layout of the D3_Positions files. Names of the 17 used joints follow the
# common convention (Martinez et al. 2017 / VideoPose3D); the rest are end sites and duplicates,
# named after the mocap skeleton they come from.
H36M32_NAMES: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "RToe", "RToeSite",
    "LHip", "LKnee", "LFoot", "LToe", "LToeSite",
    "Spine0", "Spine", "Thorax", "Neck/Nose", "Head",
    "LShoulderRoot", "LShoulder", "LElbow", "LWrist", "LThumb", "LThumbSite", "LWristEnd", "LWristSite",
    "RShoulderRoot", "RShoulder", "RElbow", "RWrist", "RThumb", "RThumbSite", "RWristEnd", "RWristSite",
)
H36M32_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
    16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30,
)
#: Indices of the 17 commonly used joints within the 32-joint layout.
H36M17_FROM_32: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
H36M17_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)


def _mirror(names: tuple[str, ...]) -> tuple[int, ...]:
    out = []
    for i, n in enumerate(names):
        # "LHip" <-> "RHip"; a name only mirrors when an upper-case letter follows the L/R
        m = {"L": "R", "R": "L"}.get(n[:1])
        other = (m + n[1:]) if m and n[1:2].isupper() else None
        out.append(names.index(other) if other in names else i)
    return tuple(out)


@cache
def h36m32() -> Skeleton:
    """Human3.6M's raw 32-joint layout."""
    return Skeleton("Human3.6M-32", H36M32_NAMES, H36M32_PARENTS, _mirror(H36M32_NAMES))


@cache
def h36m17() -> Skeleton:
    """Human3.6M's common 17-joint layout (a subset of the 32)."""
    names = tuple(H36M32_NAMES[i] for i in H36M17_FROM_32)
    return Skeleton("Human3.6M-17", names, H36M17_PARENTS, _mirror(names))


#: Human3.6M joint -> SpineTrack-37 keypoint. The SimSpine paper takes the 12 limb joints from
#: Human3.6M and leaves Pelvis (Hip), Spine, Neck (Thorax), HeadTop (Head) and Nose (Neck/Nose)
#: unused: the model's own spine and head points replace them.
H36M_TO_SPINETRACK: dict[str, str] = {
    "LShoulder": "LShoulder", "RShoulder": "RShoulder",
    "LElbow": "LElbow", "RElbow": "RElbow",
    "LWrist": "LWrist", "RWrist": "RWrist",
    "LHip": "LHip", "RHip": "RHip",
    "LKnee": "LKnee", "RKnee": "RKnee",
    "LFoot": "LAnkle", "RFoot": "RAnkle",
}
H36M_UNUSED: tuple[str, ...] = ("Hip", "Spine", "Thorax", "Neck/Nose", "Head")


def h36m_to_spinetrack(joints: np.ndarray, layout: Skeleton | None = None) -> np.ndarray:
    """Place Human3.6M joints (..., J, D) into SpineTrack-37 slots (..., 37, D), NaN elsewhere."""
    layout = layout or (h36m32() if np.shape(joints)[-2] == 32 else h36m17())
    joints = np.asarray(joints, dtype=float)
    if joints.shape[-2] != len(layout):
        raise InputError(None, f"expected {len(layout)} Human3.6M joints, got array of shape {joints.shape}")
    st = spinetrack37()
    out = np.full(joints.shape[:-2] + (len(st), joints.shape[-1]), np.nan)
    for src, dst in H36M_TO_SPINETRACK.items():
        out[..., st.index(dst), :] = joints[..., layout.index(src), :]
    return out


#: Names that other 2D layouts (Pose2Sim's HALPE_26, BODY_25, ...) share with SpineTrack-37 but put
#: elsewhere: their "Hip" is the pelvis centre between the hip joints and their "Neck" the point
#: between the shoulders, whereas SpineTrack-37's are the sacrum (S1) and C7. On the model the two
#: definitions lie about 12 cm (Hip) and 5.5 cm (Neck) apart (Pose2Sim's Markers_Halpe26.xml vs
#: spinetrack37.json), so such points must not drive SpineTrack-37 markers.
SAME_NAME_OTHER_POINT: tuple[str, ...] = ("Hip", "Neck")


def model_marker_names(names, skeleton: str | None) -> list[str]:
    """The SpineTrack-37 names among ``names`` (in SpineTrack-37 order) that mean the SpineTrack point.

    ``skeleton`` names the layout ``names`` come from. For SpineTrack-37 every name counts; for a
    Pose2Sim layout (:func:`pose2sim_layout`, any case or alias) only the points of its
    :data:`POSE2SIM_TO_SPINETRACK` entry; for an unknown layout the shared names except those of
    :data:`SAME_NAME_OTHER_POINT`.
    """
    ours = (skeleton or "").replace("-", "").replace("_", "").lower() == "spinetrack37"
    have = set(names)
    layout = pose2sim_layout_name(skeleton) if skeleton else None
    if layout is not None:
        mapped = set(POSE2SIM_TO_SPINETRACK[layout])
        return [n for n in spinetrack37().names if n in have and n in mapped]
    return [n for n in spinetrack37().names if n in have and (ours or n not in SAME_NAME_OTHER_POINT)]


# ---- Pose2Sim's 2D layouts ---------------------------------------------------------------------
# Keypoint names per index of every layout in Pose2Sim.skeletons (Pose2Sim 0.10). Pose2Sim's trees
# name only the points its OpenSim models use (HALPE_26 has no eyes or ears there), so the full
# lists are written out here from the detectors' own definitions (COCO / COCO-WholeBody, Halpe,
# OpenPose BODY_25 / BODY_25B / BODY_135 / COCO-18 / MPI-15, MediaPipe BlazePose); where Pose2Sim
# names a point, its name is used (spelled as SpineTrack-37 spells it: BlazePose's "Lknee" is
# "LKnee"), so Pose2Sim's TRC files and ours name the same points alike. Hand and face points
# that Pose2Sim leaves unnamed are "kp<index>".
_COCO17 = ("Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow",
           "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle")
_HALPE26 = _COCO17 + ("Head", "Neck", "Hip", "LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel")
_WB_FEET = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")  # COCO-WholeBody / OpenPose order
_BODY25 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "CHip",
           "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar") + _WB_FEET
# BODY_25B: COCO-17, then OpenPose's "UpperNeck" and "HeadTop" (Pose2Sim: Neck, Head), then the feet
_BODY25B = _COCO17 + ("Neck", "Head") + _WB_FEET
_COCO18 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee",
           "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar")
# OpenPose MPI-15 (point 0 is the head top and 14 the chest there; Pose2Sim calls them Nose and CHip)
_MPII15 = ("Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip", "RKnee",
           "RAnkle", "LHip", "LKnee", "LAnkle", "CHip")
_BLAZEPOSE = ("Nose", "LEyeInner", "LEye", "LEyeOuter", "REyeInner", "REye", "REyeOuter", "LEar", "REar",
              "MouthL", "MouthR", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist",
              "LPinky", "RPinky", "LIndex", "RIndex", "LThumb", "RThumb", "LHip", "RHip", "LKnee", "RKnee",
              "LAnkle", "RAnkle", "LHeel", "RHeel", "LBigToe", "RBigToe")  # 31/32: foot index (Pose2Sim: BigToe)

#: Layout -> (keypoint count(s) its files hold, names of the first points; the rest come from
#: Pose2Sim's tree or are ``kp<index>``). The first count is the layout's own.
_POSE2SIM_LAYOUTS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "HALPE_26": ((26,), _HALPE26),
    "HALPE_26_LOWER": ((26,), _HALPE26),
    "HALPE_68": ((68,), _HALPE26),
    "HALPE_136": ((136,), _HALPE26),
    "COCO_17": ((17,), _COCO17),
    "COCO_133": ((133,), _COCO17 + _WB_FEET),
    "COCO_133_WRIST": ((133,), _COCO17 + _WB_FEET),
    "BODY_25": ((25,), _BODY25),
    "BODY_25B": ((25,), _BODY25B),
    "BODY_135": ((135,), _BODY25B),
    "BLAZEPOSE": ((33,), _BLAZEPOSE),
    "COCO": ((18, 14), _COCO18),  # OpenPose COCO-18; Pose2Sim's tree uses the first 14
    "MPII": ((15,), _MPII15),
    "HAND_21": ((21,), ()),
    "FACE_106": ((106, 96), ()),  # Pose2Sim's tree names 96 of them
    "ANIMAL2D_17": ((17,), ()),
}

_LIMBS = ("LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee",
          "LAnkle", "RAnkle")
_FACE = ("Nose", "LEye", "REye", "LEar", "REar")
_FEET = ("LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel")

#: Pose2Sim layout -> the SpineTrack-37 names of its points that are the same anatomical point
#: (the layout's point carries that name). Left out on purpose: "Hip" and "Neck" of every layout
#: (pelvis centre, mid-shoulders or upper neck, not SpineTrack-37's sacrum and C7:
#: :data:`SAME_NAME_OTHER_POINT`), BODY_25's "CHip", MPII's point 0 (OpenPose's head top, which
#: Pose2Sim calls Nose) and chest, BlazePose's inner/outer eye corners, mouth and fingers, and every
#: hand and face point. "Head" is the head top in Halpe and OpenPose BODY_25B/135, as in
#: SpineTrack-37 (which extends Halpe-26). BlazePose's foot index (tip of the foot) is taken as the
#: big toe, as Pose2Sim's BlazePose model does. HALPE_26_LOWER is Pose2Sim's lower-body choice of
#: Halpe-26 points, so only those are mapped. Hand-only, face-only and animal layouts map nothing.
POSE2SIM_TO_SPINETRACK: dict[str, tuple[str, ...]] = {
    "HALPE_26": _FACE + _LIMBS + ("Head",) + _FEET,
    "HALPE_26_LOWER": _LIMBS[6:] + _FEET,
    "HALPE_68": _FACE + _LIMBS + ("Head",) + _FEET,
    "HALPE_136": _FACE + _LIMBS + ("Head",) + _FEET,
    "COCO_17": _FACE + _LIMBS,
    "COCO_133": _FACE + _LIMBS + _FEET,
    "COCO_133_WRIST": _FACE + _LIMBS + _FEET,
    "BODY_25": _FACE + _LIMBS + _FEET,
    "BODY_25B": _FACE + _LIMBS + ("Head",) + _FEET,
    "BODY_135": _FACE + _LIMBS + ("Head",) + _FEET,
    "BLAZEPOSE": _FACE + _LIMBS + ("LBigToe", "RBigToe", "LHeel", "RHeel"),
    "COCO": _FACE + _LIMBS,
    "MPII": _LIMBS,
    "HAND_21": (),
    "FACE_106": (),
    "ANIMAL2D_17": (),
}

#: Pose2Sim's ``[pose] pose_model`` aliases -> layout names (Pose2Sim's common.py / skeletons.py)
POSE2SIM_ALIASES: dict[str, str] = {
    "BODY_WITH_FEET": "HALPE_26", "LOWER_BODY": "HALPE_26_LOWER", "WHOLE_BODY_WRIST": "COCO_133_WRIST",
    "WHOLE_BODY": "COCO_133", "BODY": "COCO_17", "HAND": "HAND_21", "FACE": "FACE_106", "ANIMAL": "ANIMAL2D_17",
}


def pose2sim_layout_name(name: str | None) -> str | None:
    """The Pose2Sim layout a ``pose_model`` string means (any case, Pose2Sim's aliases such as
    ``'Body_with_feet'``, ``-`` for ``_``), or None when it is not one."""
    if not name:
        return None
    key = str(name).strip().upper().replace("-", "_")
    key = POSE2SIM_ALIASES.get(key, key)
    return key if key in _POSE2SIM_LAYOUTS else None


def pose2sim_layout_counts(name: str) -> tuple[int, ...]:
    """Keypoint counts per person that files of layout ``name`` may hold (the first is its own)."""
    layout = pose2sim_layout_name(name)
    if layout is None:
        raise InputError(None, f"unknown Pose2Sim layout {name!r} (known: {', '.join(_POSE2SIM_LAYOUTS)})")
    return _POSE2SIM_LAYOUTS[layout][0]


# layouts whose Pose2Sim tree is a subset of another's over the same points
_TREE_OF = {"COCO_133_WRIST": "COCO_133", "HALPE_26_LOWER": "HALPE_26"}


@cache
def _pose2sim_tree_names(layout: str) -> dict[int, str]:
    """id -> name of the nodes of Pose2Sim's tree for ``layout`` ({} without Pose2Sim)."""
    try:
        from anytree import PreOrderIter
        from Pose2Sim import skeletons as p2s
        root = getattr(p2s, _TREE_OF.get(layout, layout))
    except (ImportError, AttributeError):
        return {}
    return {int(n.id): str(n.name) for n in PreOrderIter(root) if getattr(n, "id", None) is not None}


def pose2sim_layout(name: str, n_keypoints: int | None = None) -> tuple[str, tuple[str, ...]]:
    """(layout name, keypoint names) of a Pose2Sim layout, for files holding ``n_keypoints`` per person.

    ``name`` is matched case-insensitively, Pose2Sim's aliases included (``'Body_with_feet'`` is
    HALPE_26). Names follow the layout's point order; points a SpineTrack-37 point corresponds to
    (:data:`POSE2SIM_TO_SPINETRACK`) carry exactly that SpineTrack-37 name.

    Raises:
        InputError: an unknown layout, or ``n_keypoints`` that is not a count of that layout.
    """
    layout = pose2sim_layout_name(name)
    if layout is None:
        raise InputError(None, f"unknown Pose2Sim layout {name!r} (known: {', '.join(_POSE2SIM_LAYOUTS)}, "
                               f"aliases {', '.join(POSE2SIM_ALIASES)})")
    counts, head = _POSE2SIM_LAYOUTS[layout]
    K = counts[0] if n_keypoints is None else int(n_keypoints)
    if K not in counts:
        raise InputError(None, f"skeleton {layout} has {' or '.join(map(str, counts))} keypoints but the files "
                               f"hold {K}")
    tree = _pose2sim_tree_names(layout)
    names = []
    for i in range(K):
        n = head[i] if i < len(head) else tree.get(i, f"kp{i}")
        names.append(n)
    # a name Pose2Sim gives to a hand/face point may repeat one already used: keep names unique
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            names[i] = f"kp{i}"
        seen.setdefault(names[i], i)
    return layout, tuple(names)


def pose2sim_to_spinetrack(name: str, n_keypoints: int | None = None) -> dict[int, int]:
    """Layout index -> SpineTrack-37 index for the points of a Pose2Sim layout that correspond."""
    layout, names = pose2sim_layout(name, n_keypoints)
    st = spinetrack37()
    return {names.index(n): st.index(n) for n in POSE2SIM_TO_SPINETRACK[layout] if n in names}


def layout_to_spinetrack(points: np.ndarray, name: str) -> np.ndarray:
    """Place a Pose2Sim layout's points (..., K, D) into SpineTrack-37 slots (..., 37, D), NaN elsewhere."""
    points = np.asarray(points, dtype=float)
    table = pose2sim_to_spinetrack(name, points.shape[-2])
    out = np.full(points.shape[:-2] + (len(spinetrack37()), points.shape[-1]), np.nan)
    for i, j in table.items():
        out[..., j, :] = points[..., i, :]
    return out
