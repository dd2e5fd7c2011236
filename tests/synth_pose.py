"""A hand-made standing SpineTrack-37 pose (model frame: x forward, y up, z right; metres) for tests
that need plausible body geometry without the biomechanical model."""

import numpy as np

from simspine.skeletons import spinetrack37

_POSE = {
    "Nose": (0.10, 1.62, 0.0), "LEye": (0.08, 1.66, -0.03), "REye": (0.08, 1.66, 0.03),
    "LEar": (0.0, 1.63, -0.075), "REar": (0.0, 1.63, 0.075), "Head": (0.0, 1.76, 0.0),
    "LShoulder": (0.0, 1.42, -0.18), "RShoulder": (0.0, 1.42, 0.18),
    "LElbow": (0.0, 1.14, -0.20), "RElbow": (0.0, 1.14, 0.20),
    "LWrist": (0.03, 0.88, -0.21), "RWrist": (0.03, 0.88, 0.21),
    "LHip": (0.0, 0.92, -0.09), "RHip": (0.0, 0.92, 0.09),
    "LKnee": (0.02, 0.50, -0.09), "RKnee": (0.02, 0.50, 0.09),
    "LAnkle": (0.0, 0.08, -0.09), "RAnkle": (0.0, 0.08, 0.09),
    "LBigToe": (0.18, 0.02, -0.11), "RBigToe": (0.18, 0.02, 0.11),
    "LSmallToe": (0.16, 0.02, -0.06), "RSmallToe": (0.16, 0.02, 0.06),
    "LHeel": (-0.05, 0.02, -0.09), "RHeel": (-0.05, 0.02, 0.09),
    "Neck": (-0.07, 1.46, 0.0), "Hip": (-0.10, 0.98, 0.0),
    "Spine_01": (-0.09, 1.05, 0.0), "Spine_02": (-0.08, 1.12, 0.0), "Spine_03": (-0.09, 1.20, 0.0),
    "Spine_04": (-0.11, 1.30, 0.0), "Spine_05": (-0.10, 1.42, 0.0),
    "LLatissimus": (-0.09, 1.36, -0.09), "RLatissimus": (-0.09, 1.36, 0.09),
    "LClavicle": (0.02, 1.45, -0.03), "RClavicle": (0.02, 1.45, 0.03),
    "Neck_02": (-0.05, 1.51, 0.0), "Neck_03": (-0.03, 1.55, 0.0),
}


def standing_pose() -> np.ndarray:
    """(37, 3) in the Y-up model frame, SpineTrack-37 order."""
    sk = spinetrack37()
    return np.array([_POSE[n] for n in sk.names], dtype=float)
