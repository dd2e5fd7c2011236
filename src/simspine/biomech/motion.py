"""Random smooth motions generated in the model, for round-trip tests and benchmarks.

Each free coordinate follows a sum of three sinusoids (0.2-1.0 Hz, random phases) around a
centre, scaled to stay within a fraction of its range. Coordinates that no SpineTrack-37 marker
observes (wrist flexion/deviation: no hand markers) stay at their defaults, as do the ones that
the markers observe only weakly (forearm pro/supination through a 1 cm wrist offset, subtalar and
MTP angles), because IK cannot recover them and a round trip on them would test nothing.
"""

from __future__ import annotations

import numpy as np

from simspine.biomech.fk import CoordinateTable, Kinematics

UNOBSERVED = ("wrist_flex", "wrist_dev", "pro_sup", "subtalar", "mtp")


def random_motion(kin: Kinematics, n_frames: int, rate: float = 50.0, seed: int = 0,
                  amplitude: float = 0.4, pelvis_travel: float = 0.3) -> CoordinateTable:
    """Smooth random coordinates (rad / m) for the free coordinates of ``kin``'s model.

    ``amplitude``: fraction of each coordinate's half range used around its centre (the centre
    is the mid range, except pelvis rotations at 0 and knees/elbows at 30% of the range so
    they stay bent). ``pelvis_travel``: amplitude of the pelvis translation, metres.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / rate
    names, cols = [], []
    for c in kin.free_coordinates:
        lo, hi = c.range
        if any(u in c.name for u in UNOBSERVED):
            val = np.full(n_frames, c.default)
        else:
            if c.name in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
                centre, amp = c.default, pelvis_travel * (0.2 if c.name == "pelvis_ty" else 1.0)
            elif c.name in ("pelvis_tilt", "pelvis_list", "pelvis_rotation"):
                centre, amp = 0.0, 0.5 * amplitude
            elif "knee" in c.name or "elbow" in c.name:
                centre, amp = lo + 0.3 * (hi - lo), 0.25 * (hi - lo) * amplitude / 0.4
            else:
                centre, amp = 0.5 * (lo + hi), 0.5 * (hi - lo) * amplitude
            f = rng.uniform(0.2, 1.0, 3)
            ph = rng.uniform(0, 2 * np.pi, 3)
            val = centre + amp * np.mean([np.sin(2 * np.pi * fi * t + pi) for fi, pi in zip(f, ph, strict=True)], axis=0)
            val = np.clip(val, lo, hi)
        names.append(c.name)
        cols.append(val)
    return CoordinateTable(t, names, np.stack(cols, axis=1))
