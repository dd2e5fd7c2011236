"""Camera rigs for synthetic sessions: Human3.6M's four cameras by default, or any calibration.

The rig's world is the calibration's world (Z up, metres, like Human3.6M and Pose2Sim sessions).
The synthetic subject moves in OpenSim's Y-up ground frame; :meth:`Rig.model_to_world` puts it in
the rig's world with :func:`simspine.frames.yup_to_zup`. The motion generator receives
:meth:`Rig.stage_yup` (where the subject should stand, in the Y-up frame) and adds it to the
pelvis translation, so the model's ground frame *is* ``zup_to_yup(rig world)``: ground truth
written in the Y-up frame and points triangulated from the rig's cameras (then mapped to Y up, as
Pose2Sim does) are directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.frames import yup_to_zup, zup_to_yup

#: Frame label of rig-world coordinates.
WORLD_FRAME = "calibration world (Z up), metres"


@dataclass
class Rig:
    """Calibrated cameras plus the floor point the subject stands on.

    Attributes:
        cameras: cameras in the rig's Z-up world (metres).
        stage_zup: (3,) the point on the floor (z = 0) the cameras look at, metres, Z up.
        name: where the cameras come from (e.g. ``"Human3.6M S9"``).
    """

    cameras: list[Camera]
    stage_zup: np.ndarray
    name: str = "rig"

    def __post_init__(self):
        if len(self.cameras) < 2:
            raise InputError(self.name, f"a rig needs at least two cameras, got {len(self.cameras)}")
        self.stage_zup = np.asarray(self.stage_zup, dtype=float).reshape(3)

    @property
    def stage_yup(self) -> np.ndarray:
        """(3,) the stage point in OpenSim's Y-up frame (metres)."""
        return zup_to_yup(self.stage_zup)

    @staticmethod
    def model_to_world(xyz_yup: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the Y-up model ground frame -> the rig's Z-up world (metres)."""
        return yup_to_zup(xyz_yup)



def look_at_point(cameras: list[Camera]) -> np.ndarray:
    """(3,) the point closest, in least squares, to all cameras' optical axes (world, metres)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        d = cam.R[2]  # optical axis (camera z) in world coordinates
        M = np.eye(3) - np.outer(d, d)
        A += M
        b += M @ cam.center
    return np.linalg.solve(A, b)


def stage_point(cameras: list[Camera]) -> np.ndarray:
    """The floor point (z = 0) under :func:`look_at_point`: where a subject should stand."""
    p = look_at_point(cameras)
    return np.array([p[0], p[1], 0.0])


def h36m_rig(subject: str = "S9") -> Rig:
    """The rig of Human3.6M ``subject``'s capture (four cameras, Human3.6M distortion), staged where
    its subjects stand."""
    from simspine.calibration import h36m_cameras

    cams = h36m_cameras(subject)
    return Rig(cams, stage_point(cams), f"Human3.6M {subject}")


def load_rig(path: str | Path) -> Rig:
    """A rig from any calibration file :func:`simspine.calibration.load_calibration` reads
    (Pose2Sim TOML, Qualisys ``.qca.txt``); its world must be Z up with the floor at z = 0."""
    from simspine.calibration import load_calibration

    cams = load_calibration(path)
    return Rig(cams, stage_point(cams), Path(path).name)


def make_rig(spec: str | None = None) -> Rig:
    """``None`` or ``"h36m"`` or ``"h36m:S5"`` -> a Human3.6M rig; anything else is a calibration path."""
    if spec is None or spec == "h36m":
        return h36m_rig()
    if spec.startswith("h36m:"):
        return h36m_rig(spec.split(":", 1)[1])
    return load_rig(spec)


def ring_rig(n: int = 4, radius: float = 4.0, height: float = 1.6, size=(1000, 1000), focal: float = 1150.0,
             target_height: float = 1.0) -> Rig:
    """``n`` distortion-free cameras on a circle around the origin looking at ``target_height`` (tests)."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + np.pi / 4
        c = np.array([radius * np.cos(a), radius * np.sin(a), height])
        z = np.array([0.0, 0.0, target_height]) - c
        z /= np.linalg.norm(z)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        K = np.array([[focal, 0, size[0] / 2], [0, focal, size[1] / 2], [0, 0, 1]])
        cams.append(Camera(f"cam{i + 1:02d}", size, K, np.zeros(5), R, -R @ c))
    return Rig(cams, np.zeros(3), f"ring of {n}")
