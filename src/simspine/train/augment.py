"""The three-stage augmentation curriculum of the SimSpine paper (Supplementary A), in cv2/numpy.

Stage 1 (hard): flip, half-body, wide scale/rotation and shift, photometric distortion, blur,
median blur, CoarseDropout (one hole, every sample). Stage 2 (medium): flip, half-body, milder
scale/rotation, no shift, blur, median blur, CoarseDropout on half the samples. Stage 3 (easy):
flip and a small scale/rotation only. The stage switches at fractions of the epochs
(``[augment] switch``). The default numbers are RTMPose's (mmpose ``RandomBBoxTransform``,
``RandomHalfBody``, ``YOLOXHSVRandomAug``, albumentations' Blur/MedianBlur/CoarseDropout in its
two-stage config), which the paper's curriculum starts from; our copy of the paper's table has lost
its numbers, so every value is stated in the config.

Why not albumentations: albumentations 2.0.8 requires ``opencv-python-headless``, which pip
installs beside our ``opencv-python`` (both own the ``cv2`` folder); uninstalling either then
leaves ``import cv2`` broken for the whole package (seen with both at 5.0.0.93). The few
operations needed are a handful of cv2 calls here.

Left/right: a flip mirrors the crop and trades the keypoints named L*/R* (SpineTrack-37's ``swap``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .crop import affine_matrix, apply_affine, box_center_size, warp_crop

# Half-body: SpineTrack-37 keypoints above / below the pelvis (mmpose's upper/lower body split,
# extended with the spine, neck, clavicle and latissimus points above and the feet below).
UPPER_BODY = ("Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist",
              "RWrist", "Head", "Neck", "Spine_03", "Spine_04", "Spine_05", "LLatissimus", "RLatissimus",
              "LClavicle", "RClavicle", "Neck_02", "Neck_03")
LOWER_BODY = ("LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "Hip", "LBigToe", "RBigToe", "LSmallToe",
              "RSmallToe", "LHeel", "RHeel", "Spine_01", "Spine_02")
HALF_BODY_MIN_TOTAL = 9     # mmpose RandomHalfBody: only people with this many labelled keypoints
HALF_BODY_MIN_UPPER = 2
HALF_BODY_MIN_LOWER = 3
HALF_BODY_PADDING = 1.5


def stage_of_epoch(epoch: int, epochs: int, switch) -> int:
    """Curriculum stage (1, 2 or 3) of 0-based ``epoch`` of ``epochs``: stage 2 from epoch
    ``ceil(switch[0]·epochs)``, stage 3 from ``ceil(switch[1]·epochs)`` (a stage may be empty when
    there are few epochs)."""
    s1, s2 = int(np.ceil(switch[0] * epochs - 1e-9)), int(np.ceil(switch[1] * epochs - 1e-9))
    return 1 if epoch < s1 else 2 if epoch < s2 else 3


@dataclass
class Augmented:
    """One training sample after augmentation: ``crop`` (H, W, 3) BGR uint8, ``xy`` (K, 2) in crop
    px, ``visible`` (K,) bool, and what was applied (for inspection)."""

    crop: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    flipped: bool = False
    half_body: bool = False
    rotation: float = 0.0
    scale: float = 1.0
    holes: list = field(default_factory=list)    # CoarseDropout boxes (x0, y0, x1, y1) crop px, exclusive ends
    applied: list = field(default_factory=list)  # names of the operations applied


def _truncnorm(rng: np.random.Generator, lim: float) -> float:
    return float(np.clip(rng.normal(), -lim, lim))


def half_body_box(xy: np.ndarray, visible: np.ndarray, names, rng: np.random.Generator, input_wh):
    """A box (x, y, w, h) around the upper or lower body's labelled keypoints (random half when both
    have enough), padded by 1.5, or None when the person has too few labelled keypoints."""
    upper = np.array([n in UPPER_BODY for n in names]) & visible
    lower = np.array([n in LOWER_BODY for n in names]) & visible
    if visible.sum() < HALF_BODY_MIN_TOTAL:
        return None
    ok_up, ok_low = upper.sum() >= HALF_BODY_MIN_UPPER, lower.sum() >= HALF_BODY_MIN_LOWER
    if not (ok_up or ok_low):
        return None
    sel = upper if ok_up and (not ok_low or rng.random() < 0.5) else lower
    pts = xy[sel]
    lo, hi = pts.min(0), pts.max(0)
    c, wh = (lo + hi) / 2, np.maximum(hi - lo, 1.0)
    aspect = input_wh[0] / input_wh[1]
    wh = np.array([wh[0], wh[0] / aspect]) if wh[0] > wh[1] * aspect else np.array([wh[1] * aspect, wh[1]])
    wh = wh * HALF_BODY_PADDING
    # returned as a COCO box: box_center_size pads it by the usual 1.25 too, so undo that here
    wh = wh / 1.25
    return np.array([c[0] - wh[0] / 2, c[1] - wh[1] / 2, wh[0], wh[1]])


def photometric(img: np.ndarray, rng: np.random.Generator, hue: float = 5.0, sat: float = 30.0,
                val: float = 30.0, contrast: float = 0.3) -> np.ndarray:
    """Random hue/saturation/exposure shifts in HSV (YOLOX's HSV gains, in OpenCV's 0-180 hue units)
    and a contrast gain about the mean grey."""
    import cv2

    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
    dh, ds, dv = rng.uniform(-1, 1, 3) * np.array([hue, sat, val])
    hsv[..., 0] = (hsv[..., 0] + int(dh)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + int(ds), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + int(dv), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    g = 1.0 + rng.uniform(-contrast, contrast)
    m = out.mean()
    return np.clip((out - m) * g + m, 0, 255).astype(np.uint8)


def coarse_dropout(img: np.ndarray, rng: np.random.Generator, holes: int, size_range) -> tuple[np.ndarray, list]:
    """Fill ``holes`` rectangles (sides a uniform fraction ``size_range`` of the crop's) with 0."""
    H, W = img.shape[:2]
    out, boxes = img.copy(), []
    for _ in range(holes):
        hh = max(1, int(round(H * rng.uniform(*size_range))))
        ww = max(1, int(round(W * rng.uniform(*size_range))))
        y0, x0 = int(rng.integers(0, H - hh + 1)), int(rng.integers(0, W - ww + 1))
        out[y0:y0 + hh, x0:x0 + ww] = 0
        boxes.append((x0, y0, x0 + ww, y0 + hh))
    return out, boxes


def augment(image: np.ndarray, xy: np.ndarray, visible: np.ndarray, bbox_xywh, stage, input_wh: tuple[int, int],
            rng: np.random.Generator, swap, names) -> Augmented:
    """One sample through a curriculum stage (a :class:`~simspine.train.config.StageConfig`).

    Args:
        image: (H, W, 3) BGR uint8 image; xy: (K, 2) keypoints px; visible: (K,) bool labelled.
        bbox_xywh: the person box; input_wh: crop (W, H) px; rng: the sample's generator.
        swap: (K,) index of each keypoint's mirror; names: (K,) keypoint names (half-body split).
    """
    import cv2

    xy = np.asarray(xy, dtype=float)
    vis = np.asarray(visible, dtype=bool).copy()
    applied = []
    box = np.asarray(bbox_xywh, dtype=float)
    half = False
    if stage.half_body_p > 0 and rng.random() < stage.half_body_p:
        hb = half_body_box(xy, vis, names, rng, input_wh)
        if hb is not None:
            box, half = hb, True
            applied.append("half_body")
    center, size = box_center_size(box, input_wh)
    scale, rot = 1.0, 0.0
    if stage.shift > 0 and rng.random() < stage.shift_p:
        center = center + np.array([rng.uniform(-1, 1), rng.uniform(-1, 1)]) * stage.shift * size
        applied.append("shift")
    lo, hi = stage.scale
    scale = (hi + lo) / 2 + _truncnorm(rng, 1.0) * (hi - lo) / 2
    size = size * scale
    if stage.rotate > 0 and rng.random() < stage.rotate_p:
        rot = _truncnorm(rng, 2.0) * stage.rotate
        applied.append("rotate")
    M = affine_matrix(center, size, rot, input_wh)
    crop = warp_crop(image, M, input_wh)
    out_xy = apply_affine(M, xy)
    flipped = bool(stage.flip_p > 0 and rng.random() < stage.flip_p)
    if flipped:
        crop = crop[:, ::-1].copy()
        out_xy[:, 0] = input_wh[0] - 1 - out_xy[:, 0]
        out_xy, vis = out_xy[list(swap)], vis[list(swap)]
        applied.append("flip")
    if stage.photometric:
        crop = photometric(crop, rng)
        applied.append("photometric")
    if stage.blur_p > 0 and rng.random() < stage.blur_p:
        k = int(rng.choice([3, 5, 7]))
        crop = cv2.blur(crop, (k, k))
        applied.append("blur")
    if stage.median_blur_p > 0 and rng.random() < stage.median_blur_p:
        crop = cv2.medianBlur(crop, int(rng.choice([3, 5, 7])))
        applied.append("median_blur")
    holes = []
    if stage.dropout_p > 0 and rng.random() < stage.dropout_p:
        crop, holes = coarse_dropout(crop, rng, stage.dropout_holes, stage.dropout_size)
        applied.append("dropout")
    return Augmented(crop, out_xy, vis, flipped, half, rot, scale, holes, applied)
