"""Closed-loop errors: what the pipeline recovered from a synthetic session versus the truth.

Shared by ``simspine demo``, ``simspine bench closed-loop`` and the tests. Position errors come
from :mod:`simspine.metrics` (mm); angle errors are RMS differences of the model's
intervertebral coordinates (degrees; the five lumbar levels above L5/S1 are coupled to it, so
each level's error is its coupling ratio times L5/S1's) and of the neck joint's three coordinates.
Frames are matched by time stamp (rounded to 0.1 ms), so a pipeline that drops or trims frames
is compared on the frames it kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simspine import metrics
from simspine.errors import InputError
from simspine.skeletons import spinetrack37

LUMBAR_LEVELS = ("L5_S1", "L4_L5", "L3_L4", "L2_L3", "L1_L2", "L1_T12")
LUMBAR_DOFS = ("Flex_Ext", "Lat_Bending", "axial_rotation")
NECK_COORDS = ("neck_flexion", "neck_bending", "neck_rotation")
REGIONS = ("lumbar", "thoracic", "cervical", "spine", "body", "all")


@dataclass
class ClosedLoopErrors:
    """Errors of one closed-loop run.

    Attributes:
        n_frames: frames compared.
        region_mm: MPJPE (mm) of the final (model) keypoints per region (:data:`REGIONS`).
        triangulated_region_mm: the same for the triangulated (pre-model) keypoints, if given.
        per_keypoint_mm: (37,) mean error per keypoint of the final keypoints (mm).
        lumbar_rmse_deg: level -> {dof: RMSE (deg)} for :data:`LUMBAR_LEVELS` x :data:`LUMBAR_DOFS`.
        neck_rmse_deg: neck coordinate -> RMSE (deg).
        filtered_region_mm: MPJPE per region after the filter stage (before the model), if given.
    """

    n_frames: int
    region_mm: dict[str, float]
    triangulated_region_mm: dict[str, float] = field(default_factory=dict)
    per_keypoint_mm: np.ndarray | None = None
    lumbar_rmse_deg: dict[str, dict[str, float]] = field(default_factory=dict)
    neck_rmse_deg: dict[str, float] = field(default_factory=dict)
    filtered_region_mm: dict[str, float] = field(default_factory=dict)

    @property
    def spine_mm(self) -> float:
        return self.region_mm["spine"]

    @property
    def lumbar_flexion_rmse_deg(self) -> float:
        """RMSE of L5/S1 flexion/extension (deg); the other levels scale with it."""
        return self.lumbar_rmse_deg["L5_S1"]["Flex_Ext"]

    @property
    def max_lumbar_rmse_deg(self) -> float:
        return max(v for d in self.lumbar_rmse_deg.values() for v in d.values())

    def as_dict(self) -> dict:
        return {"n_frames": self.n_frames, "region_mm": self.region_mm,
                "triangulated_region_mm": self.triangulated_region_mm,
                "filtered_region_mm": self.filtered_region_mm,
                "per_keypoint_mm": dict(zip(spinetrack37().names, np.asarray(self.per_keypoint_mm).tolist(),
                                            strict=True)) if self.per_keypoint_mm is not None else {},
                "lumbar_rmse_deg": self.lumbar_rmse_deg, "neck_rmse_deg": self.neck_rmse_deg}


def match_frames(t_true: np.ndarray, t_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i_true, i_pred) of frames with the same time stamp (to 0.1 ms)."""
    a = np.round(np.asarray(t_true, float) * 1e4).astype(np.int64)
    b = np.round(np.asarray(t_pred, float) * 1e4).astype(np.int64)
    common, ia, ib = np.intersect1d(a, b, return_indices=True)
    if common.size == 0:
        raise InputError(None, "recovered and true time stamps have no frame in common")
    return ia, ib


def _angle_rmse_deg(truth_names, truth_rad, pred_names, pred_rad, name: str) -> float:
    """RMSE (deg) of coordinate ``name`` between matched frames (NaN when either side lacks it)."""
    if name not in truth_names or name not in pred_names:
        return float("nan")
    a = truth_rad[:, list(truth_names).index(name)]
    b = pred_rad[:, list(pred_names).index(name)]
    return float(metrics.angle_rmse(np.rad2deg(b), np.rad2deg(a)))


def closed_loop_errors(truth_time, truth_kp, truth_coord_names, truth_coords_rad,
                       pred_time, pred_kp, pred_coord_names, pred_coords_rad,
                       tri_time=None, tri_kp=None, filt_time=None, filt_kp=None) -> ClosedLoopErrors:
    """Compare recovered keypoints and coordinates with the truth.

    Args:
        truth_time, pred_time: (T,) and (T',) seconds.
        truth_kp, pred_kp: (T, 37, 3) and (T', 37, 3) keypoints, metres, the same frame (Y up).
        truth_coord_names/_coords_rad: model coordinates (T, N) in radians / metres.
        pred_coord_names/_coords_rad: recovered coordinates (T', N') in radians / metres.
        tri_time, tri_kp: optional triangulated keypoints (T'', 37, 3) before the model.
        filt_time, filt_kp: optional filtered keypoints (before the model).
    """
    ia, ib = match_frames(truth_time, pred_time)
    gt, pr = np.asarray(truth_kp, float)[ia], np.asarray(pred_kp, float)[ib]
    region = metrics.per_region(pr, gt)  # its default regions are REGIONS

    def stage_errors(t, k):
        if k is None:
            return {}
        ja, jb = match_frames(truth_time, t)
        return metrics.per_region(np.asarray(k, float)[jb], np.asarray(truth_kp, float)[ja])

    tri, filt = stage_errors(tri_time, tri_kp), stage_errors(filt_time, filt_kp)
    tc, pc = np.asarray(truth_coords_rad, float)[ia], np.asarray(pred_coords_rad, float)[ib]

    def rmse(name):
        return _angle_rmse_deg(truth_coord_names, tc, pred_coord_names, pc, name)

    lumbar = {lvl: {dof: rmse(f"{lvl}_{dof}") for dof in LUMBAR_DOFS} for lvl in LUMBAR_LEVELS}
    neck = {n: rmse(n) for n in NECK_COORDS}
    return ClosedLoopErrors(len(ia), region, tri, metrics.per_joint_error(pr, gt), lumbar, neck, filt)
