"""Forward kinematics on the prepared model: coordinates -> 37 keypoints and vertebral rotations.

Frames and units: keypoints are in OpenSim's ground frame (Y up, X forward of the default pose,
Z to the subject's right), metres. Coordinates are radians (rotations) and metres (translations)
inside the API; ``.mot`` tables in degrees are converted on reading.

Per-vertebra rotations (:class:`SpineRotations`):

* ``intervertebral_deg``: every intervertebral coordinate, L5_S1, L4_L5, L3_L4, L2_L3, L1_L2,
  L1_T12 (Flex_Ext, Lat_Bending, axial_rotation each) and the neck joint (neck_flexion,
  neck_bending, neck_rotation), in degrees, with the model's signs. In this model the joint axes
  are z (flexion/extension, positive = extension: the superior body tips backwards), then x
  (lateral bending), then y (axial rotation).
* ``segment_euler_deg`` (T, S, 3): the orientation of each vertebral body (lumbar5 ... lumbar1,
  torso = the rigid thoracic/cervical column, head) relative to the pelvis, as intrinsic
  body-fixed Z-X-Y Euler angles of ``R_pelvis^T R_body``: [flexion/extension about Z, lateral
  bending about X, axial rotation about Y], degrees. The sequence is the one the model's
  intervertebral joints use (rotation1 about z, rotation2 about x, rotation3 about y), so for
  lumbar5 the angles equal L5_S1's three coordinates. The joint frames carry no rotation, so all
  angles are zero in the default pose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from simspine.biomech.model import (
    CoordinateInfo,
    coordinate_info,
    coupler_constraints,
    free_coordinates,
    load_model,
)
from simspine.errors import InputError
from simspine.skeletons import spinetrack37
from simspine.trajectories import Trajectories

GROUND_FRAME = "opensim-ground (Y up, metres)"
INTERVERTEBRAL_JOINTS = ("L5_S1", "L4_L5", "L3_L4", "L2_L3", "L1_L2", "L1_T12")
IV_DOFS = ("Flex_Ext", "Lat_Bending", "axial_rotation")
NECK_COORDS = ("neck_flexion", "neck_bending", "neck_rotation")
#: Bodies whose orientation relative to the pelvis is reported, with the vertebrae they stand for.
SPINE_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("lumbar5", "L5"), ("lumbar4", "L4"), ("lumbar3", "L3"), ("lumbar2", "L2"), ("lumbar1", "L1"),
    ("torso", "T12-C7 (rigid)"), ("head", "head (C1 and above)"),
)
EULER_SEQUENCE = "ZXY"  # intrinsic; scipy's upper-case convention
EULER_LABELS = ("flexion_extension", "lateral_bending", "axial_rotation")


def intervertebral_coordinate_names() -> list[str]:
    """The 18 lumbar intervertebral coordinates then the 3 neck coordinates."""
    return [f"{j}_{d}" for j in INTERVERTEBRAL_JOINTS for d in IV_DOFS] + list(NECK_COORDS)


@dataclass
class SpineRotations:
    """Per-vertebra rotations over time (see the module docstring for conventions)."""

    time: np.ndarray
    intervertebral_names: list[str]
    intervertebral_deg: np.ndarray  # (T, 21)
    segment_bodies: list[str]
    segment_euler_deg: np.ndarray  # (T, S, 3) [flex/ext, lateral bending, axial rotation]
    meta: dict = field(default_factory=lambda: {
        "segment_euler": f"intrinsic {EULER_SEQUENCE} of R_pelvis^T R_body, degrees",
        "segment_euler_labels": list(EULER_LABELS),
        "intervertebral": "model coordinates, degrees",
    })


class Kinematics:
    """A model with a live state: set coordinates, read markers and body orientations.

    ``model`` is an ``opensim.Model`` or a path (default: the prepared SpineTrack-37 model).
    Coupled (dependent) coordinates are computed from their CoordinateCouplerConstraint
    functions, so setting the free coordinates is enough and no assembly is needed.
    """

    def __init__(self, model=None):
        if model is None or isinstance(model, (str, os.PathLike)):
            model = load_model(model)
        self.model = model
        self.state = model.initSystem()
        self.coordinates: list[CoordinateInfo] = coordinate_info(model)
        self.coordinate_names = [c.name for c in self.coordinates]
        self._coord_objs = {c.name: model.getCoordinateSet().get(c.name) for c in self.coordinates}
        ms = model.getMarkerSet()
        self.marker_names = [ms.get(i).getName() for i in range(ms.getSize())]
        self._markers = [ms.get(i) for i in range(ms.getSize())]
        self._couplers = coupler_constraints(model)

    @property
    def free_coordinates(self) -> list[CoordinateInfo]:
        """Independent, unlocked coordinates (names, ranges, defaults)."""
        return free_coordinates(self.model)

    def set_coordinates(self, values: Mapping[str, float]) -> None:
        """Set coordinates (rad / m) by name; others keep their values; couplers applied."""
        import opensim as osim

        for name, v in values.items():
            c = self._coord_objs.get(name)
            if c is None:
                raise InputError(None, f"model has no coordinate {name!r}")
            c.setValue(self.state, float(v), False)
        for cp in self._couplers:
            vec = osim.Vector(len(cp.independent), 0.0)
            for k, n in enumerate(cp.independent):
                vec.set(k, self._coord_objs[n].getValue(self.state))
            self._coord_objs[cp.dependent].setValue(self.state, cp.scale * cp.function.calcValue(vec), False)
        self.model.realizePosition(self.state)

    def set_defaults(self) -> None:
        """Every coordinate to its default value."""
        self.set_coordinates({c.name: c.default for c in self.coordinates if not c.dependent and not c.locked})

    def get_coordinates(self) -> dict[str, float]:
        """Current coordinate values (rad / m) by name."""
        return {n: float(c.getValue(self.state)) for n, c in self._coord_objs.items()}

    def marker_positions(self, names: Sequence[str] | None = None) -> np.ndarray:
        """(M, 3) marker positions in ground (m) for ``names`` (default: all model markers)."""
        markers = self._markers if names is None else [self._markers[self.marker_names.index(n)] for n in names]
        out = np.empty((len(markers), 3))
        for i, m in enumerate(markers):
            p = m.getLocationInGround(self.state)
            out[i] = (p.get(0), p.get(1), p.get(2))
        return out

    def keypoints(self) -> np.ndarray:
        """(37, 3) SpineTrack-37 keypoints in ground (m) for the current state."""
        return self.marker_positions(spinetrack37().names)

    def body_rotation(self, body: str) -> np.ndarray:
        """(3, 3) rotation matrix of ``body`` in ground for the current state."""
        r = self.model.getBodySet().get(body).getTransformInGround(self.state).R()
        return np.array([[r.get(i, j) for j in range(3)] for i in range(3)])

    def body_origin(self, body: str) -> np.ndarray:
        """(3,) origin of ``body`` in ground (m)."""
        p = self.model.getBodySet().get(body).getPositionInGround(self.state)
        return np.array([p.get(0), p.get(1), p.get(2)])

    def segment_euler_deg(self) -> np.ndarray:
        """(S, 3) Z-X-Y Euler angles (deg) of :data:`SPINE_SEGMENTS` relative to the pelvis."""
        rp = self.body_rotation("pelvis")
        mats = np.stack([rp.T @ self.body_rotation(b) for b, _ in SPINE_SEGMENTS])
        return Rotation.from_matrix(mats).as_euler(EULER_SEQUENCE, degrees=True)


@dataclass
class CoordinateTable:
    """Coordinates over time: ``values`` (T, C) in radians / metres, columns ``names``."""

    time: np.ndarray
    names: list[str]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise InputError(None, f"no coordinate column {name!r}")
        return self.values[:, self.names.index(name)]


def coordinates_from_mot(path: str | os.PathLike, model_coords: Sequence[CoordinateInfo] | None = None) -> CoordinateTable:
    """Read an OpenSim ``.mot``/``.sto`` coordinates file into radians / metres.

    Rotational columns are converted from degrees when the header says ``inDegrees=yes``;
    which columns are rotational comes from ``model_coords`` (default: the prepared model).

    Raises:
        InputError (naming the file): no frames, a column that is not a coordinate of the
            model (a motion of another model would pose this one wrongly), or non-finite values
            in a column of a free coordinate.
    """
    from simspine.io.mot import read_mot

    path = Path(path)
    table = read_mot(path)
    names, values = list(table.names), np.array(table.values, dtype=float)
    if values.shape[0] == 0:
        raise InputError(path, "no frames (no rows after the column labels)")
    coords = {c.name: c for c in (model_coords or coordinate_info(load_model()))}
    unknown = [n for n in names if n not in coords]
    if unknown:
        raise InputError(path, f"{len(unknown)} column(s) are not coordinates of the model: "
                               f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    bad = [n for j, n in enumerate(names) if not (coords[n].dependent or coords[n].locked)
           and not np.isfinite(values[:, j]).all()]
    if bad:
        raise InputError(path, f"non-finite coordinate values in: {', '.join(bad)}")
    if table.in_degrees:
        for j, n in enumerate(names):
            if coords[n].rotational:
                values[:, j] = np.deg2rad(values[:, j])
    return CoordinateTable(table.time, names, values)


def run_fk(kin: Kinematics, table: CoordinateTable, progress: bool = False) -> tuple[Trajectories, SpineRotations]:
    """Keypoints (SpineTrack-37, ground frame, m) and spine rotations for every row of ``table``.

    Columns of ``table`` that are not model coordinates are ignored; model coordinates missing
    from the table keep their default values. Non-finite values raise :class:`InputError`.
    """
    if not any(n in kin.coordinate_names for n in table.names):
        raise InputError(None, "the coordinates table has no column named like a model coordinate")
    # Dependent coordinates follow from the couplers and locked ones cannot be set: only the
    # free ones are taken from the table (an IK .mot lists all of them).
    free = {c.name for c in kin.free_coordinates}
    known = [j for j, n in enumerate(table.names) if n in free]
    vals = np.asarray(table.values, dtype=float)
    if not np.isfinite(vals[:, known]).all():
        bad = sorted({table.names[j] for j in known if not np.isfinite(vals[:, j]).all()})
        raise InputError(None, f"non-finite coordinate values in: {', '.join(bad)}")
    names = spinetrack37().names
    iv_names = intervertebral_coordinate_names()
    T = vals.shape[0]
    kp = np.empty((T, len(names), 3))
    iv = np.empty((T, len(iv_names)))
    seg = np.empty((T, len(SPINE_SEGMENTS), 3))
    kin.set_defaults()
    rows = range(T)
    if progress:
        from tqdm import tqdm

        rows = tqdm(rows, desc="forward kinematics", unit="frame")
    for t in rows:
        kin.set_coordinates({table.names[j]: vals[t, j] for j in known})
        kp[t] = kin.keypoints()
        cur = kin.get_coordinates()
        iv[t] = np.rad2deg([cur[n] for n in iv_names])
        seg[t] = kin.segment_euler_deg()
    traj = Trajectories(np.asarray(table.time, float), list(names), kp, np.ones((T, len(names))), GROUND_FRAME)
    rots = SpineRotations(np.asarray(table.time, float), iv_names, iv,
                          [b for b, _ in SPINE_SEGMENTS], seg)
    return traj, rots
