"""SpinePose's top-down SpineTrack-37 models, run with onnxruntime from local ONNX files.

Why not the ``spinepose`` library itself (PyPI 2.1.0): it declares an unpinned ``torch`` dependency
(a multi-GB download it never imports), its ``SpinePoseEstimator`` only takes model presets given as
hub URLs, and any model path that does not exist is downloaded. This module does the same inference
with onnxruntime alone, matching spinepose's tools step by step, and never downloads anything:

- person detector (``YOLOX`` end-to-end export with NMS: output ``dets`` (1, N, 5) = x1, y1, x2, y2,
  score on a letterboxed 114-grey input of raw pixel values; or ``RF-DETR``: outputs boxes (1, Q, 4)
  normalised cx, cy, w, h and class logits (1, Q, C) with background at index 0, input resized and
  normalised with ImageNet mean/std in [0, 1] units); boxes scoring over 0.3 are kept;
- pose model (RTMPose-style, input (1, 3, H, W), e.g. 256×192): the box is padded by 1.25, widened
  or heightened to the model's aspect ratio, cropped by an affine warp (bilinear), normalised with
  mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) per channel, and the SimCC outputs
  x (1, K, W·2) and y (1, K, H·2) are decoded by argmax / 2.0 back into image pixels; the score is
  the mean of the two maxima, and a score ≤ 0 marks the keypoint missing.

Frames are passed in OpenCV's BGR order, as spinepose does (it hands ``cv2.VideoCapture`` frames to
both models unconverted).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from simspine.errors import InputError

INSTALL = 'pip install -e ".[detect]"'
POSE_MEAN = np.array([123.675, 116.28, 103.53])
POSE_STD = np.array([58.395, 57.12, 57.375])
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0
DET_SCORE_THRESHOLD = 0.3
RFDETR_NUM_SELECT = 300

# spinepose's cache (tools/utils/file.py) and the file names its presets download, preferred first
# (the library's default is mode "large" with the RF-DETR detector; "simspine" = model version 2).
SPINEPOSE_CACHE = Path("~/.cache/spinepose/hub/checkpoints")
CACHED_POSE_MODELS = (
    "spinepose-l_32xb256-10e_simspine-256x192.onnx",
    "spinepose-m_32xb256-10e_simspine-256x192.onnx",
    "spinepose-s_32xb256-10e_simspine-256x192.onnx",
    "spinepose-x_32xb128-10e_spinetrack-384x288.onnx",
    "spinepose-l_32xb256-10e_spinetrack-256x192.onnx",
    "spinepose-m_32xb256-10e_spinetrack-256x192.onnx",
    "spinepose-s_32xb256-10e_spinetrack-256x192.onnx",
)
CACHED_DET_MODELS = (
    "rfdetr_m_v142_576x576.onnx",
    "rfdetr_s_v142_512x512.onnx",
    "rfdetr_l_v142_704x704.onnx",
    "rfdetr_n_v142_384x384.onnx",
    "yolox_x_8xb8-300e_humanart-a39d44ed.onnx",
    "yolox_m_8xb8-300e_humanart-c2c7a14a.onnx",
    "yolox_tiny_8xb8-300e_humanart-6f3252f9.onnx",
)


def cached_model(candidates) -> Path | None:
    """The first of ``candidates`` present in spinepose's cache folder, else None (never downloads)."""
    folder = SPINEPOSE_CACHE.expanduser()
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    return None


def _onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise InputError(None, f"the spinepose backend needs onnxruntime ({e}); install it with: {INSTALL}") from None
    return ort


def _load(path: str | os.PathLike, what: str):
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found")
    ort = _onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings are not the user's business
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise InputError(path, f"cannot load the {what} as an ONNX model ({str(e).splitlines()[0]})") from None


def _static(d) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _input_hw(session, path: Path) -> tuple[int, int, str]:
    """Model input (height, width) and layout ('nchw' or 'nhwc') from the ONNX input shape, else
    from a ``HxW`` size in the file name (as spinepose's file names carry)."""
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4:
        raise InputError(path, f"expected a 4-D image input, the model's input has shape {shape}")
    layout = "nhwc" if _static(shape[3]) == 3 and _static(shape[1]) != 3 else "nchw"
    h, w = (shape[1], shape[2]) if layout == "nhwc" else (shape[2], shape[3])
    if _static(h) and _static(w):
        return int(h), int(w), layout
    m = re.findall(r"(\d+)x(\d+)", path.name)
    if m:
        return int(m[-1][0]), int(m[-1][1]), layout
    raise InputError(path, "the model's input size is not fixed and its file name has no HxW size")


def _to_input(img_hwc: np.ndarray, layout: str) -> np.ndarray:
    x = img_hwc[None].astype(np.float32, copy=False)
    return x if layout == "nhwc" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# --- top-down geometry (spinepose tools/pose_estimation/pre_processings.py) ---------------------

def bbox_center_scale(bbox_xyxy, padding: float = BOX_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Box (x1, y1, x2, y2) px → centre (2,) px and padded size (2,) px."""
    x1, y1, x2, y2 = np.asarray(bbox_xyxy, dtype=float)[:4]
    return np.array([x1 + x2, y1 + y2]) * 0.5, np.array([x2 - x1, y2 - y1]) * padding


def fix_aspect_ratio(scale: np.ndarray, aspect_wh: float) -> np.ndarray:
    """Grow the box size (w, h) px to the model's width/height ratio, never shrinking it."""
    w, h = float(scale[0]), float(scale[1])
    return np.array([w, w / aspect_wh]) if w > h * aspect_wh else np.array([h * aspect_wh, h])


def warp_matrix(center: np.ndarray, scale: np.ndarray, out_wh: tuple[int, int], rot_deg: float = 0.0) -> np.ndarray:
    """2×3 affine image → crop matrix: the box of width ``scale[0]`` px at ``center`` px, rotated by
    ``rot_deg`` degrees (counter-clockwise on screen, as mmpose; inference uses 0, training augments
    with it), onto an ``out_wh`` crop. Built from the same three point pairs as spinepose's
    ``get_warp_matrix`` so the float32 result is identical."""
    import cv2

    center = np.asarray(center, dtype=float)
    src_w = float(scale[0])
    dst_w, dst_h = out_wh
    rad = np.deg2rad(rot_deg)
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    # (0, -w/2) rotated by rad; exactly (0, -w/2) at 0 degrees.
    src[1] = center + np.array([src_w * 0.5 * np.sin(rad), src_w * -0.5 * np.cos(rad)])
    d = src[0] - src[1]
    src[2] = src[1] + np.array([-d[1], d[0]])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, dst_w * -0.5])
    d = dst[0] - dst[1]
    dst[2] = dst[1] + np.array([-d[1], d[0]])
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, center: np.ndarray, scale: np.ndarray,
                 input_wh: tuple[int, int], split_ratio: float = SIMCC_SPLIT_RATIO):
    """SimCC outputs → keypoints in image pixels.

    Args:
        simcc_x: (N, K, W·split_ratio) scores along x; simcc_y: (N, K, H·split_ratio) along y.
        center, scale: the crop's centre and aspect-corrected size in image px (2,).
        input_wh: model input (width, height) px.
    Returns:
        ``(xy (N, K, 2) px, score (N, K))``; score = mean of the x and y maxima; NaN where score ≤ 0.
    """
    N, K, _ = simcc_x.shape
    sx = simcc_x.reshape(N * K, -1)
    sy = simcc_y.reshape(N * K, -1)
    locs = np.stack([np.argmax(sx, axis=1), np.argmax(sy, axis=1)], axis=-1).astype(np.float32)
    score = 0.5 * (np.amax(sx, axis=1) + np.amax(sy, axis=1))
    xy = locs.reshape(N, K, 2) / split_ratio
    xy = xy / np.asarray(input_wh, dtype=float) * scale + center - scale / 2
    score = score.reshape(N, K).astype(float)
    xy[score <= 0] = np.nan
    return xy, score


class PoseModel:
    """A SpineTrack-37 top-down pose model (RTMPose form with SimCC outputs)."""

    def __init__(self, path: str | os.PathLike, n_keypoints: int = 37):
        self.path = Path(path)
        self.session = _load(self.path, "pose model")
        self.input_h, self.input_w, self.layout = _input_hw(self.session, self.path)
        self.input_name = self.session.get_inputs()[0].name
        outs = self.session.get_outputs()
        if len(outs) != 2:
            raise InputError(self.path, f"expected 2 outputs (SimCC x and y), the model has {len(outs)}: "
                                        "not an RTMPose/SpinePose model")
        k = _static(outs[0].shape[1]) if len(outs[0].shape) == 3 else None
        if k is not None and k != n_keypoints:
            raise InputError(self.path, f"the model gives {k} keypoints, SpineTrack-37 needs {n_keypoints}")
        self.n_keypoints = n_keypoints

    def __call__(self, frame_bgr: np.ndarray, bbox_xyxy) -> tuple[np.ndarray, np.ndarray]:
        """One person: box (x1, y1, x2, y2) px → ``(xy (K, 2) px, score (K,))``."""
        import cv2

        center, scale = bbox_center_scale(bbox_xyxy)
        scale = fix_aspect_ratio(scale, self.input_w / self.input_h)
        M = warp_matrix(center, scale, (self.input_w, self.input_h))
        crop = cv2.warpAffine(frame_bgr, M, (self.input_w, self.input_h), flags=cv2.INTER_LINEAR)
        x = _to_input((crop - POSE_MEAN) / POSE_STD, self.layout)
        simcc_x, simcc_y = self.session.run(None, {self.input_name: x})
        if simcc_x.ndim != 3 or simcc_x.shape[1] != self.n_keypoints:
            raise InputError(self.path, f"SimCC output of shape {simcc_x.shape}: expected "
                                        f"(1, {self.n_keypoints}, {int(self.input_w * SIMCC_SPLIT_RATIO)})")
        xy, score = decode_simcc(simcc_x, simcc_y, center, scale, (self.input_w, self.input_h))
        return xy[0], score[0]


class PersonDetector:
    """A person detector ONNX in one of the two forms spinepose uses (YOLOX with NMS, RF-DETR)."""

    def __init__(self, path: str | os.PathLike, score_threshold: float = DET_SCORE_THRESHOLD):
        self.path = Path(path)
        self.session = _load(self.path, "person detector model")
        self.input_h, self.input_w, self.layout = _input_hw(self.session, self.path)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        outs = self.session.get_outputs()
        last = [o.shape[-1] if len(o.shape) else None for o in outs]
        if last[0] == 5 or "yolox" in self.path.name.lower():
            self.kind = "yolox"
        elif len(outs) >= 2 and (last[0] == 4 or "rfdetr" in self.path.name.lower()):
            self.kind = "rfdetr"
        else:
            raise InputError(self.path, "unrecognised detector outputs: expected YOLOX with NMS (dets N×5) "
                                        "or RF-DETR (boxes N×4 and class logits N×C)")

    def __call__(self, frame_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) frame → person boxes (N, 4) x1, y1, x2, y2 px, most confident first."""
        return self._yolox(frame_bgr) if self.kind == "yolox" else self._rfdetr(frame_bgr)

    def _yolox(self, img: np.ndarray) -> np.ndarray:
        import cv2

        padded = np.full((self.input_h, self.input_w, 3), 114, dtype=np.uint8)
        ratio = min(self.input_h / img.shape[0], self.input_w / img.shape[1])
        rw, rh = int(img.shape[1] * ratio), int(img.shape[0] * ratio)
        padded[:rh, :rw] = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
        dets = self.session.run(None, {self.input_name: _to_input(padded, self.layout)})[0]
        dets = np.asarray(dets, dtype=float).reshape(-1, dets.shape[-1])
        if dets.shape[-1] != 5:
            raise InputError(self.path, f"YOLOX output of shape {dets.shape}: expected (1, N, 5)")
        keep = dets[:, 4] > self.score_threshold
        boxes, scores = dets[keep, :4] / ratio, dets[keep, 4]
        return boxes[np.argsort(-scores, kind="stable")]

    def _rfdetr(self, img: np.ndarray) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        x = cv2.resize(img, (self.input_w, self.input_h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = (x * np.float32(1.0 / 255.0) - IMAGENET_MEAN) / IMAGENET_STD
        boxes, logits = self.session.run(None, {self.input_name: _to_input(x, self.layout)})[:2]
        boxes = np.asarray(boxes, dtype=float)[0]
        probs = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=float)[0]))
        probs[:, 0] = -1.0  # background class
        flat = probs.ravel()
        top = np.argsort(-flat, kind="stable")[:min(RFDETR_NUM_SELECT, flat.size)]
        scores, q, label = flat[top], top // probs.shape[1], top % probs.shape[1]
        keep = (scores > self.score_threshold) & (label == 1)  # label 1 = person (COCO id 0 after background)
        cx, cy = boxes[q[keep], 0], boxes[q[keep], 1]
        bw, bh = np.clip(boxes[q[keep], 2], 0, None), np.clip(boxes[q[keep], 3], 0, None)
        return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1) * np.array([w, h, w, h])


class SpinePoseBackend:
    """Person boxes (a detector, or the whole frame) → SpineTrack-37 keypoints per person."""

    name = "spinepose"

    def __init__(self, pose_model: str | os.PathLike | None = None, det_model: str | os.PathLike | None = None,
                 no_detector: bool = False, max_people: int = 10, n_keypoints: int = 37):
        if pose_model is None:
            pose_model = cached_model(CACHED_POSE_MODELS)
            if pose_model is None:
                raise InputError(None, "no SpinePose model: give --pose-model FILE (a SpineTrack-37 ONNX such as "
                                       f"{CACHED_POSE_MODELS[0]}; none in {SPINEPOSE_CACHE}), or use --backend mediapipe")
        if det_model is None and not no_detector:
            det_model = cached_model(CACHED_DET_MODELS)
            if det_model is None:
                raise InputError(None, "no person detector: give --det-model FILE (RF-DETR or YOLOX ONNX as spinepose "
                                       f"uses, e.g. {CACHED_DET_MODELS[0]}; none in {SPINEPOSE_CACHE}), or "
                                       "--no-detector to take the whole frame as the person's box")
        self.pose = PoseModel(pose_model, n_keypoints)
        self.detector = None if no_detector else PersonDetector(det_model)
        self.max_people = max_people

    def describe(self) -> str:
        det = f"detector {self.detector.path.name} ({self.detector.kind})" if self.detector else "no detector (whole frame)"
        return f"pose model {self.pose.path.name} ({self.pose.input_h}x{self.pose.input_w}), {det}"

    def camera(self) -> _CameraDetector:
        """A detector for one camera's frames (stateless: each frame is detected on its own)."""
        return _CameraDetector(self)


class _CameraDetector:
    def __init__(self, backend: SpinePoseBackend):
        self._b = backend

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) BGR frame → ``(xy (P, K, 2) px, conf (P, K))``, one row per detected person."""
        b = self._b
        if b.detector is None:
            boxes = np.array([[0.0, 0.0, frame_bgr.shape[1], frame_bgr.shape[0]]])
        else:
            boxes = b.detector(frame_bgr)[:b.max_people]
        K = b.pose.n_keypoints
        xy, conf = np.zeros((len(boxes), K, 2)), np.zeros((len(boxes), K))
        for i, box in enumerate(boxes):
            xy[i], conf[i] = b.pose(frame_bgr, box)
        conf[~np.isfinite(xy).all(-1)] = 0.0
        return xy, np.clip(conf, 0.0, None)

    def close(self) -> None:
        pass
