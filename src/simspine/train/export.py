"""ONNX export in the spinepose package's form, read by ``simspine detect --backend spinepose``.

The file takes the normalised crop ``input`` (N, 3, H, W) float32 (BGR, minus mean, over std; N
dynamic) and gives ``simcc_x`` (N, K, W·s) and ``simcc_y`` (N, K, H·s), as SpinePose's RTMPose
exports do; :class:`simspine.detect.spinepose_backend.PoseModel` does the crop, normalisation and
decoding around it.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from simspine.fileio import atomic_path


def onnx_name(model) -> str:
    """``spinetrack37_<H>x<W>.onnx``: the size in the name, as spinepose's files carry it."""
    return f"spinetrack37_{model.input_hw[0]}x{model.input_hw[1]}.onnx"


def export_onnx(model, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``model`` (a :class:`~simspine.train.model.KeypointModel`) to ``path`` atomically."""
    path = Path(path)
    m = copy.deepcopy(model).float().cpu().eval()
    H, W = m.input_hw
    dummy = torch.zeros(1, 3, H, W)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the TorchScript exporter (no onnxscript needed); its deprecation notice is not the user's
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (dummy,), str(tmp), input_names=["input"], output_names=["simcc_x", "simcc_y"],
                          dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return path


def onnx_vs_torch(model, path: str | os.PathLike, images_bgr, boxes_xyxy) -> float:
    """Largest keypoint difference (px) between the exported file run by the detect backend's
    :class:`~simspine.detect.spinepose_backend.PoseModel` and ``model`` in torch
    (:func:`~simspine.train.model.predict`) on people ``boxes_xyxy[i]`` of ``images_bgr[i]``."""
    from simspine.detect.spinepose_backend import PoseModel

    from .model import predict

    pm = PoseModel(path, model.n_keypoints)
    m = copy.deepcopy(model).float().cpu().eval()
    worst = 0.0
    for img, box in zip(images_bgr, boxes_xyxy, strict=True):
        xy_o, _ = pm(img, box)
        xy_t, _ = predict(m, img, [box])
        d = np.abs(xy_o - xy_t[0])
        worst = max(worst, float(np.nanmax(d)) if np.isfinite(d).any() else 0.0)
        if (np.isnan(xy_o) != np.isnan(xy_t[0])).any():
            worst = float("inf")
    return worst
