"""Top-down crop geometry for training and SimCC targets.

The crop is the one :mod:`simspine.detect.spinepose_backend` runs at inference (box padded by 1.25,
widened to the input's aspect ratio, affine warp); training adds a rotation about the box centre,
as mmpose's ``get_warp_matrix`` does. With no rotation :func:`affine_matrix` gives the same matrix
as the detect backend's :func:`~simspine.detect.spinepose_backend.warp_matrix`.
Coordinates are pixel centres: pixel ``i`` of the crop sits at ``x = i``.
"""

from __future__ import annotations

import numpy as np

from simspine.detect.spinepose_backend import BOX_PADDING, bbox_center_scale, fix_aspect_ratio, warp_matrix


def box_center_size(bbox_xywh, input_wh: tuple[int, int], padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """COCO box (x, y, w, h) px → crop centre (2,) px and size (w, h) px at the input's aspect ratio,
    as the detect backend computes them from (x1, y1, x2, y2)."""
    x, y, w, h = np.asarray(bbox_xywh, dtype=float)[:4]
    center, size = bbox_center_scale((x, y, x + w, y + h), padding)
    return center, fix_aspect_ratio(size, input_wh[0] / input_wh[1])


def affine_matrix(center, size_wh, rot_deg: float, out_wh: tuple[int, int]) -> np.ndarray:
    """2×3 float64 image → crop matrix: the box of ``size_wh`` px at ``center`` px, rotated by
    ``rot_deg`` degrees (counter-clockwise on screen, as mmpose), onto an ``out_wh`` crop: the detect
    backend's :func:`~simspine.detect.spinepose_backend.warp_matrix` with a rotation."""
    return warp_matrix(center, size_wh, out_wh, rot_deg=rot_deg)


def apply_affine(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points (..., 2) px through the 2×3 matrix ``M``."""
    xy = np.asarray(xy, dtype=float)
    return xy @ M[:, :2].T + M[:, 2]


def warp_crop(image: np.ndarray, M: np.ndarray, out_wh: tuple[int, int]) -> np.ndarray:
    """The crop (H, W, C) of ``image`` through ``M`` (bilinear, black outside the image, as the
    detect backend's ``cv2.warpAffine`` call)."""
    import cv2

    return cv2.warpAffine(image, M, tuple(int(v) for v in out_wh), flags=cv2.INTER_LINEAR)


def simcc_targets(xy_crop: np.ndarray, visible: np.ndarray, input_wh: tuple[int, int], split_ratio: float,
                  sigma: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SimCC labels of keypoints in crop pixels (mmpose ``SimCCLabel``, Gaussian, not normalised).

    Args:
        xy_crop: (K, 2) keypoints in crop px; visible: (K,) bool (labelled).
        input_wh: crop (W, H) px; split_ratio: bins per px; sigma: (x, y) Gaussian widths in bins.
    Returns:
        ``(tx (K, W·s), ty (K, H·s), weight (K,))``; weight 0 for unlabelled keypoints and those
        outside the crop (their labels are zero).
    """
    W, H = input_wh
    nx, ny = int(round(W * split_ratio)), int(round(H * split_ratio))
    K = len(xy_crop)
    mu = np.asarray(xy_crop, dtype=float) * split_ratio
    inside = np.isfinite(mu).all(-1) & (mu[:, 0] >= 0) & (mu[:, 0] <= nx - 1) & (mu[:, 1] >= 0) & (mu[:, 1] <= ny - 1)
    w = (np.asarray(visible, dtype=bool) & inside).astype(np.float32)
    tx = np.zeros((K, nx), np.float32)
    ty = np.zeros((K, ny), np.float32)
    m = w > 0
    bx, by = np.arange(nx, dtype=float), np.arange(ny, dtype=float)
    tx[m] = np.exp(-((bx[None] - mu[m, :1]) ** 2) / (2 * sigma[0] ** 2))
    ty[m] = np.exp(-((by[None] - mu[m, 1:2]) ** 2) / (2 * sigma[1] ** 2))
    return tx, ty, w
