"""Named 3D point trajectories over time (markers or keypoints), the unit of exchange between stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simspine.errors import InputError


@dataclass
class Trajectories:
    """3D trajectories of named points.

    Attributes:
        time: (T,) seconds.
        names: M point names (SpineTrack-37 order where the points are SpineTrack-37 keypoints).
        xyz: (T, M, 3) positions in metres; NaN where a point is missing.
        conf: (T, M) confidence in [0, 1] (used as IK weight multiplier); ones if not given.
        frame: which world frame the coordinates are in, e.g. ``"opensim-ground (Y up)"``.
    """

    time: np.ndarray
    names: list[str]
    xyz: np.ndarray
    conf: np.ndarray | None = None
    frame: str = "opensim-ground (Y up)"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=float)
        self.xyz = np.asarray(self.xyz, dtype=float)
        self.names = list(self.names)
        if self.xyz.ndim != 3 or self.xyz.shape[2] != 3:
            raise InputError(None, f"trajectories must be (T, M, 3), got {self.xyz.shape}")
        if self.xyz.shape[0] != self.time.shape[0]:
            raise InputError(None, f"{self.xyz.shape[0]} frames of positions but {self.time.shape[0]} timestamps")
        if self.xyz.shape[1] != len(self.names):
            raise InputError(None, f"{self.xyz.shape[1]} points but {len(self.names)} names")
        if len(set(self.names)) != len(self.names):
            raise InputError(None, "duplicate point names: " + ", ".join(sorted({n for n in self.names if self.names.count(n) > 1})))
        if self.conf is None:
            self.conf = np.where(np.isfinite(self.xyz).all(-1), 1.0, 0.0)
        else:
            self.conf = np.asarray(self.conf, dtype=float)
            if self.conf.shape != self.xyz.shape[:2]:
                raise InputError(None, f"confidence shape {self.conf.shape} does not match {self.xyz.shape[:2]}")

    @property
    def n_frames(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def rate(self) -> float:
        """Frame rate in Hz from the median time step."""
        if self.n_frames < 2:
            return float("nan")
        return float(1.0 / np.median(np.diff(self.time)))

    def select(self, names) -> Trajectories:
        """A copy with only ``names`` (in that order); unknown names raise a clear error."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise InputError(None, f"unknown point names: {', '.join(missing)}")
        idx = [self.names.index(n) for n in names]
        return Trajectories(self.time.copy(), list(names), self.xyz[:, idx].copy(), self.conf[:, idx].copy(),
                            self.frame, dict(self.meta))

    def point(self, name: str) -> np.ndarray:
        """(T, 3) trajectory of one point."""
        if name not in self.names:
            raise InputError(None, f"unknown point name {name!r}")
        return self.xyz[:, self.names.index(name)]
