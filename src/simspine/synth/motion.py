"""Action-like motions on the spine-aware model, for synthetic sessions with known ground truth.

A motion is a set of smooth trajectories of the model's free coordinates (radians / metres, the
model's own units and sign conventions), sampled at ``fps``. Seven actions are built from
smooth phase functions plus a little subject-specific low-frequency variation:

* ``walking`` — a gait cycle (hips, knees, ankles, arm swing, pelvis rotation/list, lumbar
  counter-rotation and lateral sway, head stabilisation) along a straight line;
* ``sitdown`` — stand, sit down (hips/knees flex, trunk leans forward), sit, stand up;
* ``pickup`` — bend forward with lumbar flexion near its range, reach down, come back up;
* ``reach`` — reach both arms overhead with lumbar and neck extension, on the toes;
* ``twist`` — trunk axial rotation to both sides with the head following;
* ``phoning`` — right hand at the ear, head tilted towards it, slow sway;
* ``sway`` — quiet standing sway.

Sign conventions measured on the model (Y up, facing +X): ``L5_S1_Flex_Ext`` < 0 flexes the
trunk forward (the five lumbar levels above are coupled to the three L5_S1 coordinates),
``pelvis_tilt`` < 0 tilts it forward, ``neck_flexion`` < 0 brings the nose down, ``arm_add`` < 0
abducts, ``arm_flex`` > 0 raises the arm forward, knee and elbow flexion are positive.

Coordinates are kept inside their ranges with a smooth soft clip (no kinks). Foot contact and
placement in the capture volume are applied after forward kinematics in
:mod:`simspine.synth.subject` (pelvis translation only, so markers shift rigidly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simspine.errors import InputError

ACTIONS = ("walking", "sitdown", "pickup", "reach", "twist", "phoning", "sway")

# Ranges of the free coordinates of Model_Pose2Sim_muscles_flex.osim (radians; metres for
# translations), used for the soft clip. Read from the model; fixed here so that motion
# generation needs no OpenSim (tests compare them with the model).
RANGES: dict[str, tuple[float, float]] = {
    "pelvis_tilt": (-1.571, 1.571), "pelvis_list": (-1.571, 1.571), "pelvis_rotation": (-1.571, 1.571),
    "pelvis_tx": (-5.0, 5.0), "pelvis_ty": (-1.0, 2.0), "pelvis_tz": (-3.0, 3.0),
    "hip_flexion_r": (-0.87, 2.618), "hip_adduction_r": (-1.047, 0.524), "hip_rotation_r": (-1.222, 0.698),
    "knee_angle_r": (0.0, 2.705), "ankle_angle_r": (-1.047, 1.047), "subtalar_angle_r": (-0.349, 0.349),
    "mtp_angle_r": (-0.524, 0.524),
    "hip_flexion_l": (-0.87, 2.618), "hip_adduction_l": (-1.047, 0.524), "hip_rotation_l": (-1.222, 0.698),
    "knee_angle_l": (0.0, 2.705), "ankle_angle_l": (-1.047, 1.047), "subtalar_angle_l": (-0.349, 0.349),
    "mtp_angle_l": (-0.524, 0.524),
    "L5_S1_Flex_Ext": (-0.195, 0.064), "L5_S1_Lat_Bending": (-0.039, 0.039), "L5_S1_axial_rotation": (-0.262, 0.262),
    "neck_flexion": (-0.5, 0.5), "neck_bending": (-1.571, 1.571), "neck_rotation": (-0.785, 0.785),
    "arm_flex_r": (-1.57, 1.57), "arm_add_r": (-2.09, 1.57), "arm_rot_r": (-1.57, 1.57),
    "elbow_flex_r": (0.0, 2.618), "pro_sup_r": (0.0, 2.09), "wrist_flex_r": (-1.92, 1.92),
    "wrist_dev_r": (-0.436, 0.611),
    "arm_flex_l": (-1.57, 1.57), "arm_add_l": (-2.09, 1.57), "arm_rot_l": (-1.57, 1.57),
    "elbow_flex_l": (0.0, 2.618), "pro_sup_l": (0.0, 2.09), "wrist_flex_l": (-1.92, 1.92),
    "wrist_dev_l": (-0.436, 0.611),
}
FREE_COORDINATES = tuple(RANGES)
TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
#: Standing pelvis height of the generic model (its default ``pelvis_ty``), metres.
GENERIC_PELVIS_HEIGHT = 0.94

# A relaxed standing pose: arms down along the body, elbows and knees slightly bent.
_STAND = {"arm_add_r": -0.12, "arm_add_l": -0.12, "elbow_flex_r": 0.25, "elbow_flex_l": 0.25,
          "pro_sup_r": 1.2, "pro_sup_l": 1.2, "knee_angle_r": 0.05, "knee_angle_l": 0.05,
          "pelvis_ty": GENERIC_PELVIS_HEIGHT}


@dataclass
class Motion:
    """Free-coordinate trajectories of one action.

    Attributes:
        time: (T,) seconds from 0.
        coords: free coordinate name -> (T,) values (radians, metres for pelvis_t*), in the model's
            local frame (facing +X, pelvis above the origin) until placed.
        action: action name.
        meta: generation parameters (seed, fps, heading, ...).
    """

    time: np.ndarray
    coords: dict[str, np.ndarray]
    action: str
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.time)

    def array(self, names=FREE_COORDINATES) -> np.ndarray:
        """(T, N) values of ``names`` in that order."""
        return np.stack([self.coords[n] for n in names], axis=1)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """C2-continuous 0 -> 1 ramp over x in [0, 1] (quintic), clipped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def bump(t: np.ndarray, t0: float, t1: float, t2: float, t3: float) -> np.ndarray:
    """0 before t0, smooth rise to 1 by t1, hold until t2, smooth fall to 0 by t3."""
    up = smoothstep((t - t0) / max(t1 - t0, 1e-9))
    down = 1.0 - smoothstep((t - t2) / max(t3 - t2, 1e-9))
    return up * down


def soft_clip(x: np.ndarray, lo: float, hi: float, margin: float = 0.05) -> np.ndarray:
    """Keep ``x`` inside [lo, hi] with a smooth (tanh) knee ``margin`` of the range from each end."""
    m = margin * (hi - lo)
    a, b = lo + m, hi - m
    x = np.asarray(x, float)
    out = x.copy()
    over, under = x > b, x < a
    out[over] = b + m * np.tanh((x[over] - b) / m)
    out[under] = a - m * np.tanh((a - x[under]) / m)
    return out


def _wiggle(t: np.ndarray, rng: np.random.Generator, amp: float, fmax: float = 0.6) -> np.ndarray:
    """Smooth random variation: three sinusoids below ``fmax`` Hz, peak amplitude about ``amp``."""
    out = np.zeros_like(t)
    for _ in range(3):
        f = rng.uniform(0.1, fmax)
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 2.0


def _both(c: dict, stem: str, right: np.ndarray, left: np.ndarray) -> None:
    c[f"{stem}_r"] = right
    c[f"{stem}_l"] = left


def _walking(t, rng, S):
    speed = min(rng.uniform(0.8, 1.1), 3.0 / max(S, 1e-9))  # keep the path within about 3 m
    f = speed / rng.uniform(1.1, 1.4)  # stride frequency: stride length 1.1-1.4 m
    w = 2 * np.pi * f * t
    c = {}
    _both(c, "hip_flexion", 0.1 + 0.42 * np.sin(w), 0.1 + 0.42 * np.sin(w + np.pi))

    def knee(ph):  # swing-phase flexion peak (~60 deg) and a small stance-phase bump
        return 0.08 + 0.95 * np.maximum(0, np.sin(ph - 0.9)) ** 2 + 0.15 * np.maximum(0, np.sin(ph + 2.3)) ** 2

    _both(c, "knee_angle", knee(w), knee(w + np.pi))
    _both(c, "ankle_angle", 0.05 + 0.2 * np.sin(w - 1.4), 0.05 + 0.2 * np.sin(w + np.pi - 1.4))
    _both(c, "arm_flex", -0.3 * np.sin(w), 0.3 * np.sin(w))
    _both(c, "elbow_flex", 0.35 + 0.15 * np.sin(w + 0.4), 0.35 - 0.15 * np.sin(w + 0.4))
    c["pelvis_rotation"] = 0.09 * np.sin(w)
    c["pelvis_list"] = 0.05 * np.sin(2 * w)
    c["pelvis_tilt"] = -0.05 + 0.02 * np.sin(2 * w)
    c["L5_S1_axial_rotation"] = -0.10 * np.sin(w)  # thorax counter-rotates the pelvis
    c["L5_S1_Lat_Bending"] = -0.025 * np.sin(2 * w)
    c["L5_S1_Flex_Ext"] = -0.02 + 0.008 * np.sin(2 * w)
    c["neck_rotation"] = 0.06 * np.sin(w)
    c["neck_flexion"] = -0.1 + 0.03 * np.sin(2 * w)
    c["pelvis_tx"] = speed * (t - S / 2)  # centred on the stage
    c["pelvis_ty"] = GENERIC_PELVIS_HEIGHT - 0.02 + 0.015 * np.cos(2 * w)
    return c


def _sitdown(t, rng, S):
    a, b, d, e = (np.array([0.12, 0.42, 0.58, 0.88]) + rng.uniform(-0.03, 0.03, 4)) * S
    s = bump(t, a, b, d, e)  # seated depth
    lean = bump(t, a, (a + b) / 2, (a + b) / 2, b) + bump(t, d, (d + e) / 2, (d + e) / 2, e)  # transitions
    c = {}
    hip = 1.45 * s + 0.35 * lean
    _both(c, "hip_flexion", hip, hip)
    _both(c, "knee_angle", 0.05 + 1.5 * s, 0.05 + 1.5 * s)
    _both(c, "ankle_angle", 0.2 * s, 0.2 * s)
    _both(c, "hip_adduction", -0.08 * s, -0.08 * s)
    c["pelvis_tilt"] = 0.15 * s - 0.3 * lean
    c["L5_S1_Flex_Ext"] = -0.04 - 0.06 * s - 0.08 * lean
    c["neck_flexion"] = -0.15 + 0.2 * lean
    c["pelvis_ty"] = GENERIC_PELVIS_HEIGHT - 0.42 * s
    _both(c, "arm_flex", 0.5 * s + 0.3 * lean, 0.5 * s + 0.3 * lean)
    _both(c, "elbow_flex", 0.25 + 0.9 * s, 0.25 + 0.9 * s)
    return c


def _pickup(t, rng, S):
    a, b, d, e = (np.array([0.1, 0.4, 0.55, 0.85]) + rng.uniform(-0.03, 0.03, 4)) * S
    s = bump(t, a, b, d, e)
    side = rng.choice([-1.0, 1.0])
    c = {}
    _both(c, "hip_flexion", 1.05 * s, 1.05 * s)
    _both(c, "knee_angle", 0.05 + 0.55 * s, 0.05 + 0.55 * s)
    _both(c, "ankle_angle", 0.15 * s, 0.15 * s)
    c["pelvis_tilt"] = -0.45 * s
    c["L5_S1_Flex_Ext"] = -0.02 - 0.16 * s
    c["L5_S1_Lat_Bending"] = 0.02 * side * s
    c["L5_S1_axial_rotation"] = 0.12 * side * s
    c["neck_flexion"] = -0.1 + 0.25 * s  # looks ahead/down while bent
    _both(c, "arm_flex", 0.9 * s, 0.7 * s)
    _both(c, "elbow_flex", 0.25 + 0.2 * s, 0.25 + 0.3 * s)
    c["pelvis_ty"] = GENERIC_PELVIS_HEIGHT - 0.12 * s
    return c


def _reach(t, rng, S):
    n = max(1, int(round(S / 3.0)))  # one reach every ~3 s
    ph = (t / S) * n
    s = 0.5 - 0.5 * np.cos(2 * np.pi * ph)
    c = {}
    _both(c, "arm_flex", 1.35 * s, 1.3 * s)
    _both(c, "arm_add", -0.12 - 0.55 * s, -0.12 - 0.6 * s)
    _both(c, "elbow_flex", 0.25 - 0.15 * s, 0.25 - 0.15 * s)
    c["L5_S1_Flex_Ext"] = -0.01 + 0.045 * s
    c["neck_flexion"] = 0.3 * s
    c["pelvis_tilt"] = 0.05 * s
    _both(c, "ankle_angle", -0.35 * s, -0.35 * s)  # on the toes
    c["pelvis_ty"] = GENERIC_PELVIS_HEIGHT + 0.05 * s
    return c


def _twist(t, rng, S):
    f = rng.uniform(0.35, 0.5)
    w = 2 * np.pi * f * t
    env = smoothstep(t / 0.6) * smoothstep((S - t) / 0.6) if S > 1.5 else np.ones_like(t)
    c = {}
    c["L5_S1_axial_rotation"] = 0.22 * np.sin(w) * env
    c["pelvis_rotation"] = 0.15 * np.sin(w) * env
    c["L5_S1_Lat_Bending"] = 0.015 * np.sin(w) * env
    c["L5_S1_Flex_Ext"] = -0.03 + 0.01 * np.cos(2 * w)
    c["neck_rotation"] = -0.35 * np.sin(w) * env
    _both(c, "arm_add", -0.3 - 0.2 * env, -0.3 - 0.2 * env)
    _both(c, "arm_flex", 0.5 + 0.3 * np.sin(w) * env, 0.5 - 0.3 * np.sin(w) * env)
    _both(c, "elbow_flex", 1.2 * np.ones_like(t), 1.2 * np.ones_like(t))
    _both(c, "hip_rotation", 0.1 * np.sin(w) * env, 0.1 * np.sin(w) * env)
    return c


def _phoning(t, rng, S):
    up = smoothstep(t / min(0.8, S / 3))
    c = {}
    c["arm_flex_r"] = 0.55 * up
    c["arm_add_r"] = -0.12 - 0.35 * up
    c["elbow_flex_r"] = 0.25 + 2.0 * up
    c["pro_sup_r"] = 1.2 - 0.6 * up
    c["wrist_flex_r"] = -0.2 * up
    tilt = 0.28 + 0.08 * np.sin(2 * np.pi * 0.3 * t)
    c["neck_bending"] = tilt * up  # towards the phone (right)
    c["neck_flexion"] = -0.15 * up + 0.05 * np.sin(2 * np.pi * 0.45 * t)
    c["neck_rotation"] = 0.1 * np.sin(2 * np.pi * 0.2 * t)
    c["L5_S1_Lat_Bending"] = 0.02 * up + 0.01 * np.sin(2 * np.pi * 0.25 * t)
    c["L5_S1_Flex_Ext"] = -0.03 + 0.015 * np.sin(2 * np.pi * 0.2 * t)
    c["L5_S1_axial_rotation"] = 0.06 * np.sin(2 * np.pi * 0.15 * t)
    c["pelvis_list"] = 0.03 * np.sin(2 * np.pi * 0.25 * t)
    return c


def _sway(t, rng, S):
    c = {}
    c["pelvis_list"] = 0.02 * np.sin(2 * np.pi * 0.3 * t)
    c["pelvis_tilt"] = 0.02 * np.sin(2 * np.pi * 0.2 * t + 1.0)
    c["pelvis_tz"] = 0.02 * np.sin(2 * np.pi * 0.3 * t)
    c["L5_S1_Flex_Ext"] = -0.03 + 0.02 * np.sin(2 * np.pi * 0.25 * t)
    c["L5_S1_Lat_Bending"] = -0.015 * np.sin(2 * np.pi * 0.3 * t)
    c["L5_S1_axial_rotation"] = 0.05 * np.sin(2 * np.pi * 0.18 * t)
    c["neck_flexion"] = 0.1 * np.sin(2 * np.pi * 0.2 * t)
    c["neck_rotation"] = 0.2 * np.sin(2 * np.pi * 0.12 * t)
    c["neck_bending"] = 0.08 * np.sin(2 * np.pi * 0.17 * t)
    return c


_GENERATORS = {"walking": _walking, "sitdown": _sitdown, "pickup": _pickup, "reach": _reach,
               "twist": _twist, "phoning": _phoning, "sway": _sway}

# Small subject-specific variation added to every action (radians; peak).
_WIGGLE = {"L5_S1_Flex_Ext": 0.01, "L5_S1_Lat_Bending": 0.006, "L5_S1_axial_rotation": 0.02,
           "neck_flexion": 0.05, "neck_bending": 0.04, "neck_rotation": 0.06,
           "arm_flex_r": 0.05, "arm_flex_l": 0.05, "elbow_flex_r": 0.05, "elbow_flex_l": 0.05,
           "arm_rot_r": 0.1, "arm_rot_l": 0.1, "wrist_flex_r": 0.1, "wrist_flex_l": 0.1,
           "hip_rotation_r": 0.03, "hip_rotation_l": 0.03, "pelvis_list": 0.01}


def generate_motion(action: str, seconds: float = 4.0, fps: float = 50.0,
                    rng: np.random.Generator | None = None, variation: bool = True) -> Motion:
    """Free-coordinate trajectories of ``action`` in the model's local frame (facing +X).

    Args:
        action: one of :data:`ACTIONS`.
        seconds: duration; ``fps``: sampling rate (Hz).
        rng: seeded generator (phase timings, gait speed and the small random variation).
        variation: add smooth subject-specific variation to the trunk, neck and arms.
    """
    if action not in _GENERATORS:
        raise InputError(None, f"unknown action {action!r} (choose from {', '.join(ACTIONS)})")
    if not (seconds > 0 and fps > 0):
        raise InputError(None, f"seconds and fps must be positive, got {seconds} and {fps}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = max(2, int(round(seconds * fps)))
    t = np.arange(n) / fps
    S = float(t[-1])
    c = {k: np.full(n, v, float) for k, v in _STAND.items()}
    for k, v in _GENERATORS[action](t, rng, S).items():
        c[k] = np.asarray(v, float)  # actions give absolute values (stand pose included)
    if variation:
        for k, amp in _WIGGLE.items():
            c[k] = c.get(k, np.zeros(n)) + _wiggle(t, rng, amp)
    out = {}
    for name in FREE_COORDINATES:
        v = c.get(name, np.zeros(n))
        lo, hi = RANGES[name]
        out[name] = v if name in TRANSLATIONS else soft_clip(v, lo, hi)
    return Motion(t, out, action, {"fps": fps, "seconds": seconds, "variation": variation})
