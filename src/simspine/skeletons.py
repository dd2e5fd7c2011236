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

    ``skeleton`` names the layout ``names`` come from; for any layout other than SpineTrack-37
    (or an unknown one) the names of :data:`SAME_NAME_OTHER_POINT` are left out.
    """
    ours = (skeleton or "").replace("-", "").replace("_", "").lower() == "spinetrack37"
    have = set(names)
    return [n for n in spinetrack37().names if n in have and (ours or n not in SAME_NAME_OTHER_POINT)]
