"""World-frame conventions.

Calibrations (Human3.6M, Qualisys, most Pose2Sim sessions) use a Z-up world. OpenSim's ground
frame is Y up. Like Pose2Sim (``zup2yup`` in its triangulation), simspine maps a Z-up world to Y up
with the cyclic permutation (x, y, z) -> (y, z, x), a proper rotation, so TRC files written by
either tool line up.
"""

from __future__ import annotations

import numpy as np

ZUP_TO_YUP = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
YUP_TO_ZUP = ZUP_TO_YUP.T


def zup_to_yup(xyz: np.ndarray) -> np.ndarray:
    """Map points (..., 3) from a Z-up world to OpenSim's Y-up frame (same units)."""
    return np.asarray(xyz, dtype=float) @ ZUP_TO_YUP.T


def yup_to_zup(xyz: np.ndarray) -> np.ndarray:
    """Inverse of :func:`zup_to_yup`."""
    return np.asarray(xyz, dtype=float) @ YUP_TO_ZUP.T
