"""Per-level range of motion (ROM) of the spine per sequence.

Levels (bottom to top) and the model coordinates they read (degrees, the model's signs; see
:mod:`simspine.biomech.fk`): L5–S1 ``L5_S1_*``, L4–L5, L3–L4, L2–L3, L1–L2 and T12–L1
(``L1_T12_*``), each ``Flex_Ext`` / ``Lat_Bending`` / ``axial_rotation``, and the neck
(``neck_flexion`` / ``neck_bending`` / ``neck_rotation``, the model's single cervicothoracic joint).

ROM of a sequence, per level and motion = max − min of the coordinate over the sequence's
estimated frames (NaN frames are skipped), degrees: the total excursion (for flexion/extension
flexion plus extension; for lateral bending and axial rotation both sides together), the way
the White & Panjabi reference ranges in ``rom_reference.json`` count combined flexion/extension.
Couplers of this model tie the five lumbar levels above L5–S1 to L5–S1, so the lumbar ROM ratios
between levels are the coupler ratios on any input the model produced.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

LEVELS: tuple[tuple[str, str], ...] = (
    ("L5-S1", "L5_S1"), ("L4-L5", "L4_L5"), ("L3-L4", "L3_L4"), ("L2-L3", "L2_L3"), ("L1-L2", "L1_L2"),
    ("T12-L1", "L1_T12"),
)
MOTIONS = ("flexion_extension", "lateral_bending", "axial_rotation")
_DOF = {"flexion_extension": "Flex_Ext", "lateral_bending": "Lat_Bending", "axial_rotation": "axial_rotation"}
NECK = {"flexion_extension": "neck_flexion", "lateral_bending": "neck_bending", "axial_rotation": "neck_rotation"}


def coordinate_for(level: str, motion: str) -> str:
    """Model coordinate of ``level`` (e.g. 'L4-L5', 'neck') and ``motion`` (one of :data:`MOTIONS`)."""
    if level == "neck":
        return NECK[motion]
    return f"{dict(LEVELS)[level]}_{_DOF[motion]}"


def all_levels() -> list[str]:
    """Lumbar levels bottom to top, then 'neck'."""
    return [lv for lv, _ in LEVELS] + ["neck"]


def sequence_rom(angles_deg: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """ROM (deg) per level and motion from coordinate series ``{name: (T,) degrees}``.

    Returns ``{level: {motion: rom}}``; NaN where the coordinate is absent or has no finite frame.
    """
    out = {}
    for level in all_levels():
        out[level] = {}
        for motion in MOTIONS:
            v = angles_deg.get(coordinate_for(level, motion))
            v = None if v is None else np.asarray(v, float)
            ok = v is not None and np.isfinite(v).any()
            out[level][motion] = float(np.nanmax(v) - np.nanmin(v)) if ok else float("nan")
    return out


@cache
def rom_reference() -> dict:
    """The literature reference bands (``rom_reference.json``): per level and motion ``lo``, ``hi``
    and ``representative`` (deg), with the sources; plus the normative LLA/TKA ranges."""
    return json.loads(resources.files("simspine.data").joinpath("rom_reference.json").read_text("utf-8"))
