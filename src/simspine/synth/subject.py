"""Synthetic subjects and their ground-truth motion.

A :class:`Subject` is the prepared SpineTrack-37 model scaled to a height (1.5-1.95 m by
default) with per-segment proportions varied (+-5%), and every marker moved by a random
placement jitter (1 cm RMS by default) — so the generator's model is never the model the
pipeline scales and fits. :func:`perform` runs a :class:`~simspine.synth.motion.Motion` on it:
forward kinematics (``simspine.biomech.fk``), feet kept on the floor, subject placed on the
rig's stage with a heading, and returns the :class:`GroundTruth`.

Frames: everything here is in OpenSim's ground frame (Y up, metres); the rig's stage point is
given in that frame too (:attr:`simspine.synth.rig.Rig.stage_yup`), so the ground truth lines up
with ``zup_to_yup`` of the rig's world.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from simspine.errors import InputError
from simspine.skeletons import spinetrack37
from simspine.synth.motion import FREE_COORDINATES, Motion
from simspine.trajectories import Trajectories

#: Head-top (``Head`` marker) height of the generic model standing in its default pose, metres
#: (measured: 1.711 m with pelvis_ty 0.94; the lowest foot marker is then 0.012 m above y = 0).
GENERIC_HEIGHT = 1.711 + 0.012

#: Scaling groups: one factor per group, the same left and right.
SEGMENT_GROUPS: dict[str, tuple[str, ...]] = {
    "pelvis": ("pelvis", "sacrum"),
    "torso": ("lumbar5", "lumbar4", "lumbar3", "lumbar2", "lumbar1", "torso", "Abdomen"),
    "head": ("head",),
    "thigh": ("femur_r", "femur_l", "patella_r", "patella_l"),
    "shank": ("tibia_r", "tibia_l"),
    "foot": ("talus_r", "talus_l", "calcn_r", "calcn_l", "toes_r", "toes_l"),
    "upper_arm": ("humerus_r", "humerus_l"),
    "forearm": ("ulna_r", "ulna_l", "radius_r", "radius_l", "hand_r", "hand_l"),
}
FOOT_MARKERS = ("LBigToe", "RBigToe", "LSmallToe", "RSmallToe", "LHeel", "RHeel")
GROUND_FRAME = "opensim-ground (Y up, metres)"


@dataclass
class Subject:
    """A synthetic person.

    Attributes:
        height_m: standing height the model is scaled to (head top), metres.
        segment_scales: group name (:data:`SEGMENT_GROUPS`) -> uniform scale factor.
        marker_jitter_m: marker name -> (3,) offset added to its placement, body frame, metres.
        mass_kg: body mass.
    """

    height_m: float
    segment_scales: dict[str, float]
    marker_jitter_m: dict[str, np.ndarray] = field(default_factory=dict)
    mass_kg: float = 70.0

    def describe(self) -> dict:
        return {"height_m": self.height_m, "mass_kg": self.mass_kg,
                "segment_scales": {k: round(v, 5) for k, v in self.segment_scales.items()},
                "marker_jitter_rms_m": float(np.sqrt(np.mean([np.sum(np.square(v)) for v in
                                                              self.marker_jitter_m.values()])))
                if self.marker_jitter_m else 0.0}


def random_subject(rng: np.random.Generator, height_m: float | None = None, height_range=(1.5, 1.95),
                   proportion_spread: float = 0.05, jitter_m: float = 0.01, mass_kg: float | None = None) -> Subject:
    """Draw a subject: height uniform in ``height_range`` unless given; each segment group's factor
    is ``height / generic height`` times ``1 + U(-spread, spread)``; every marker's placement moves
    by a Gaussian offset of ``jitter_m`` RMS length (``jitter_m / sqrt(3)`` per axis)."""
    h = float(height_m) if height_m is not None else float(rng.uniform(*height_range))
    if not 1.0 < h < 2.5:
        raise InputError(None, f"subject height {h} m is implausible")
    base = h / GENERIC_HEIGHT
    scales = {g: base * (1.0 + rng.uniform(-proportion_spread, proportion_spread)) for g in SEGMENT_GROUPS}
    jit = {}
    if jitter_m > 0:
        for name in spinetrack37().names:
            jit[name] = rng.normal(0.0, jitter_m / np.sqrt(3.0), 3)
    mass = float(mass_kg) if mass_kg is not None else float(np.clip(22.0 * h * h * rng.uniform(0.9, 1.15), 45, 110))
    return Subject(h, scales, jit, mass)


def build_model(subject: Subject):
    """The prepared model scaled and jittered for ``subject`` (an ``opensim.Model``, system built).

    Scaling uses OpenSim's ``Model.scale`` (bodies, joint frames, markers and geometry scale
    together); the jitter is added to marker placements after scaling (:func:`save_model` writes it).
    """
    import opensim as osim

    from simspine.biomech.model import load_model

    model = load_model()
    state = model.initSystem()
    ss = osim.ScaleSet()
    for group, bodies in SEGMENT_GROUPS.items():
        f = float(subject.segment_scales[group])
        for b in bodies:
            sc = osim.Scale()
            sc.setSegmentName(b)
            sc.setScaleFactors(osim.Vec3(f, f, f))
            sc.setApply(True)
            ss.cloneAndAppend(sc)
    model.scale(state, ss, True, float(subject.mass_kg))
    ms = model.updMarkerSet()
    for name, d in subject.marker_jitter_m.items():
        if ms.contains(name):
            mk = ms.get(name)
            loc = mk.get_location()
            mk.set_location(osim.Vec3(loc.get(0) + d[0], loc.get(1) + d[1], loc.get(2) + d[2]))
    model.setName("simspine_synthetic_subject")
    model.finalizeConnections()
    model.initSystem()
    return model


def save_model(model, path: str | os.PathLike) -> Path:
    """Write an ``opensim.Model`` to ``path`` (``.osim``) atomically."""
    from simspine.fileio import atomic_path

    with atomic_path(path) as tmp:
        model.printToXML(str(tmp))
    return Path(path)


@dataclass
class GroundTruth:
    """What a synthetic session really contains (OpenSim ground frame, Y up, metres/radians).

    Attributes:
        keypoints: SpineTrack-37 keypoints (T, 37, 3) as :class:`Trajectories`.
        coordinate_names, coordinates: every model coordinate (T, N) incl. coupled ones, rad / m.
        rotations: :class:`simspine.biomech.fk.SpineRotations` (intervertebral and segment angles, deg).
        subject, motion: what produced them.
    """

    keypoints: Trajectories
    coordinate_names: list[str]
    coordinates: np.ndarray
    rotations: object
    subject: Subject
    motion: Motion
    meta: dict = field(default_factory=dict)

    def coordinate(self, name: str) -> np.ndarray:
        return self.coordinates[:, self.coordinate_names.index(name)]


def place(motion: Motion, heading_rad: float, stage_yup) -> Motion:
    """Turn the whole motion by ``heading_rad`` about the vertical (Y) axis and move it onto the stage.

    The pelvis orientation is recomposed exactly (the model's ground-pelvis joint is intrinsic
    Z-X-Y: tilt, list, rotation), so a bend stays a bend in the subject's own sagittal plane.
    """
    c = {k: v.copy() for k, v in motion.coords.items()}
    R0 = Rotation.from_euler("ZXY", np.stack([c["pelvis_tilt"], c["pelvis_list"], c["pelvis_rotation"]], 1))
    turn = Rotation.from_euler("Y", heading_rad)
    tilt, lst, rot = (turn * R0).as_euler("ZXY").T
    c["pelvis_tilt"], c["pelvis_list"], c["pelvis_rotation"] = tilt, lst, rot
    p = np.stack([c["pelvis_tx"], c["pelvis_ty"], c["pelvis_tz"]], 1)
    p = turn.apply(p) + np.asarray(stage_yup, float) * [1, 0, 1]
    c["pelvis_tx"], c["pelvis_ty"], c["pelvis_tz"] = p.T
    meta = dict(motion.meta, heading_rad=float(heading_rad), stage_yup=[float(v) for v in stage_yup])
    return Motion(motion.time, c, motion.action, meta)


def perform(subject: Subject, motion: Motion, heading_rad: float = 0.0, stage_yup=(0.0, 0.0, 0.0),
            model=None, plant_feet: bool | None = None, progress: bool = False) -> GroundTruth:
    """Run ``motion`` on ``subject``: forward kinematics, feet on the floor, placed on the stage.

    Feet: the pelvis is translated (so every marker moves rigidly with it) so that the lowest
    foot marker stays at its standing height above the floor (y = 0); for actions other than
    walking the mid-point between the ankles also stays where it starts (feet planted). The
    correction is smoothed (Gaussian, 2 frames) so trajectories stay smooth.
    """
    from simspine.biomech.fk import CoordinateTable, Kinematics, run_fk

    model = model if model is not None else build_model(subject)
    kin = Kinematics(model)
    sk = spinetrack37()
    plant = (motion.action != "walking") if plant_feet is None else plant_feet

    foot_idx = sk.indices(FOOT_MARKERS)
    # the lowest foot marker of the generic model stands 0.012 m above the floor; it scales with the foot
    floor_ref = 0.012 * subject.segment_scales.get("foot", 1.0)

    placed = place(motion, heading_rad, stage_yup)
    names = list(FREE_COORDINATES)
    table = CoordinateTable(placed.time, names, placed.array(names))
    traj, rots = run_fk(kin, table, progress=progress)
    kp = traj.xyz

    # rigid pelvis translation that keeps the feet on the floor (and planted)
    delta = np.zeros((len(placed.time), 3))
    delta[:, 1] = floor_ref - kp[:, foot_idx, 1].min(1)
    if plant:
        ank = kp[:, sk.indices(["LAnkle", "RAnkle"])].mean(1)
        delta[:, 0] = ank[0, 0] - ank[:, 0]
        delta[:, 2] = ank[0, 2] - ank[:, 2]
    delta = gaussian_filter1d(delta, 2.0, axis=0, mode="nearest")
    kp = kp + delta[:, None, :]
    coords = {k: v.copy() for k, v in placed.coords.items()}
    coords["pelvis_tx"] = coords["pelvis_tx"] + delta[:, 0]
    coords["pelvis_ty"] = coords["pelvis_ty"] + delta[:, 1]
    coords["pelvis_tz"] = coords["pelvis_tz"] + delta[:, 2]
    placed = Motion(placed.time, coords, placed.action, placed.meta)

    # all coordinates (coupled ones included) for the ground-truth .mot
    kin.set_defaults()
    all_names = kin.coordinate_names
    allc = np.empty((len(placed.time), len(all_names)))
    for t in range(len(placed.time)):
        kin.set_coordinates({n: coords[n][t] for n in names})
        cur = kin.get_coordinates()
        allc[t] = [cur[n] for n in all_names]

    keypoints = Trajectories(placed.time, list(sk.names), kp, np.ones(kp.shape[:2]), GROUND_FRAME,
                             {"source": "synthetic ground truth"})
    return GroundTruth(keypoints, list(all_names), allc, rots, subject, placed,
                       {"heading_rad": float(heading_rad), "stage_yup": [float(v) for v in stage_yup]})
