"""The top-down SpineTrack-37 network in the SpinePose/RTMPose form: normalised crop → backbone →
SimCC head → per-keypoint 1-D scores along x (W·s bins) and y (H·s bins), s = split ratio.

Why a plain-torch backbone: SpinePose uses RTMPose's CSPNeXt, and the usual source of ready
backbones, ``timm``, imports torchvision, which cannot be installed beside this CPU build of torch
(PyPI's torchvision pins another torch). :class:`CSPNeXt` is a small CSPNeXt-like net (conv-BN-SiLU
stem, stages of stride-2 conv + cross-stage-partial blocks) whose widths and depths the config
sets. A timm backbone is used when ``backbone = "timm"`` and timm imports (:func:`timm_backbone`).
A SpinePose ONNX file converted by onnx2torch replaces the whole network (:func:`from_onnx`).

The network takes the crop already normalised (BGR, minus mean, over std, as
:mod:`simspine.detect.spinepose_backend` prepares it), so the exported ONNX has spinepose's form.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simspine.errors import InputError


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm + SiLU (CSPNeXt's ConvModule)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.SiLU(inplace=True))


class CSPNeXtBlock(nn.Module):
    """3×3 conv then depthwise 5×5 + pointwise conv, with a residual (CSPNeXt's block)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = ConvBNAct(c, c, 3)
        self.dw = ConvBNAct(c, c, 5, groups=c)
        self.pw = ConvBNAct(c, c, 1)

    def forward(self, x):
        return x + self.pw(self.dw(self.conv1(x)))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: half the channels through ``n`` blocks, concatenated with a
    shortcut half, fused by a 1×1 conv."""

    def __init__(self, cin: int, cout: int, n: int):
        super().__init__()
        mid = max(cout // 2, 1)
        self.main = ConvBNAct(cin, mid, 1)
        self.short = ConvBNAct(cin, mid, 1)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid) for _ in range(n)])
        self.final = ConvBNAct(2 * mid, cout, 1)

    def forward(self, x):
        return self.final(torch.cat([self.blocks(self.main(x)), self.short(x)], 1))


class CSPNeXt(nn.Module):
    """Stem (stride 2) and one stride-2 stage per width: total stride ``2 ** (1 + len(widths))``."""

    def __init__(self, widths=(32, 64, 128, 256), depths=(1, 2, 2, 1)):
        super().__init__()
        c0 = max(widths[0] // 2, 8)
        self.stem = nn.Sequential(ConvBNAct(3, c0, 3, 2), ConvBNAct(c0, c0, 3))
        stages, cin = [], c0
        for w, d in zip(widths, depths, strict=True):
            stages.append(nn.Sequential(ConvBNAct(cin, w, 3, 2), CSPLayer(w, w, d)))
            cin = w
        self.stages = nn.Sequential(*stages)
        self.out_channels = cin
        self.stride = 2 ** (1 + len(widths))

    def forward(self, x):
        return self.stages(self.stem(x))


class SimCCHead(nn.Module):
    """RTMPose's SimCC head without its gated attention unit: a k×k conv to one map per keypoint,
    each map flattened to a token, a linear layer + LayerNorm + SiLU, and two linear classifiers to
    the x and y bins."""

    def __init__(self, cin: int, feat_hw: tuple[int, int], n_keypoints: int, input_hw: tuple[int, int],
                 split_ratio: float, hidden: int = 256, kernel: int = 7):
        super().__init__()
        self.final = nn.Conv2d(cin, n_keypoints, kernel, 1, kernel // 2)
        self.mlp = nn.Sequential(nn.Linear(feat_hw[0] * feat_hw[1], hidden), nn.LayerNorm(hidden), nn.SiLU())
        self.cls_x = nn.Linear(hidden, int(round(input_hw[1] * split_ratio)))
        self.cls_y = nn.Linear(hidden, int(round(input_hw[0] * split_ratio)))

    def forward(self, feats):
        t = self.mlp(self.final(feats).flatten(2))
        return self.cls_x(t), self.cls_y(t)


class _BackboneHead(nn.Module):
    def __init__(self, backbone: nn.Module, head: SimCCHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return self.head(self.backbone(x))


class KeypointModel(nn.Module):
    """Normalised crops (N, 3, H, W) → ``(simcc_x (N, K, W·s), simcc_y (N, K, H·s))``.

    ``input_hw`` (H, W) px, ``split_ratio`` s and ``n_keypoints`` K travel with the model (and its
    checkpoints) so that decoding and export need nothing else.
    """

    def __init__(self, net: nn.Module, input_hw: tuple[int, int], n_keypoints: int = 37, split_ratio: float = 2.0,
                 kind: str = "cspnext"):
        super().__init__()
        self.net = net
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.n_keypoints = int(n_keypoints)
        self.split_ratio = float(split_ratio)
        self.kind = kind

    def forward(self, x):
        sx, sy = self.net(x)
        return sx, sy


def build_model(mcfg, n_keypoints: int = 37, source=None) -> KeypointModel:
    """The network a :class:`~simspine.train.config.ModelConfig` describes (``init_onnx`` first,
    then ``backbone``); ``init_checkpoint`` weights are loaded by the training loop."""
    if mcfg.init_onnx:
        return from_onnx(mcfg.init_onnx, n_keypoints)
    H, W = mcfg.input_size
    if mcfg.backbone == "timm":
        backbone = timm_backbone(mcfg.timm_name, mcfg.timm_weights, source)
    else:
        backbone = CSPNeXt(tuple(mcfg.widths), tuple(mcfg.depths))
    with torch.no_grad():
        feat = backbone.eval()(torch.zeros(1, 3, H, W))
    backbone.train()
    head = SimCCHead(feat.shape[1], tuple(feat.shape[2:]), n_keypoints, (H, W), mcfg.split_ratio,
                     mcfg.head_hidden, mcfg.head_kernel)
    return KeypointModel(_BackboneHead(backbone, head), (H, W), n_keypoints, mcfg.split_ratio, mcfg.backbone)


class _LastFeature(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)[-1]


def timm_backbone(name: str, weights: str = "", source=None) -> nn.Module:
    """A timm model as a backbone (its last feature map), weights from a local file if given.

    The hook for machines where timm works (it imports torchvision, which this project's CPU torch
    cannot have beside it); never downloads (``pretrained=False``)."""
    try:
        import timm
    except Exception as e:  # ImportError, or torchvision failing to load
        raise InputError(source, f"backbone = 'timm' needs a working timm (and torchvision) ({e}); "
                                 "use backbone = 'cspnext'") from None
    if not name:
        raise InputError(source, "backbone = 'timm' needs [model] timm_name")
    m = timm.create_model(name, pretrained=False, features_only=True, out_indices=(-1,))
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        m.load_state_dict(state, strict=False)
    return _LastFeature(m)


def _torchvision_stub() -> None:
    """onnx2torch imports torchvision at import time for its NMS and RoiAlign converters only; a
    pose model has neither op, so where torchvision is absent a stub that fails on use stands in."""
    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        pass

    def _absent(*a, **k):
        raise RuntimeError("this ONNX model needs torchvision (NMS/RoiAlign), which is not installed")

    tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    ops.nms = ops.roi_align = ops.box_convert = _absent
    tv.ops = ops
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.ops", ops)


def _constants_as_initializers(proto) -> None:
    """Turn ``Identity`` copies of initializers and ``Constant`` tensors into initializers, in place.

    torch's exporter (and others) share equal weights through ``Identity`` nodes; onnx2torch reads a
    Conv's weight and bias from the initializers only and fails on such a copy."""
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    keep = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            t = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
        elif node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            t = numpy_helper.from_array(numpy_helper.to_array(node.attribute[0].t), node.output[0])
        else:
            keep.append(node)
            continue
        proto.graph.initializer.append(t)
        inits[t.name] = t
    del proto.graph.node[:]
    proto.graph.node.extend(keep)


def from_onnx(path: str | os.PathLike, n_keypoints: int = 37) -> KeypointModel:
    """A SpinePose/RTMPose ONNX (input (1, 3, H, W) normalised crop; outputs SimCC x and y) as a
    trainable torch model, converted by onnx2torch (``pip install --no-deps onnx2torch==1.5.15``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "init_onnx model not found")
    _torchvision_stub()
    try:
        import onnx
        import onnx2torch
    except ImportError as e:
        raise InputError(path, f"init_onnx needs onnx2torch ({e}): pip install --no-deps onnx2torch==1.5.15") from None
    try:
        proto = onnx.load(str(path))
    except Exception as e:
        raise InputError(path, f"cannot read the ONNX model ({str(e).splitlines()[0]})") from None
    ins = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    dims = [d.dim_value for d in ins[0].type.tensor_type.shape.dim] if ins else []
    if len(dims) != 4 or dims[1] != 3 or min(dims[2:]) <= 0 or len(proto.graph.output) != 2:
        raise InputError(path, f"expected a pose model with input (N, 3, H, W) and 2 SimCC outputs, got input {dims} "
                               f"and {len(proto.graph.output)} outputs")
    out_dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output]
    H, W = dims[2], dims[3]
    k = out_dims[0][1] if len(out_dims[0]) == 3 else 0
    if k and k != n_keypoints:
        raise InputError(path, f"the model gives {k} keypoints, SpineTrack-37 needs {n_keypoints}")
    split = out_dims[0][2] / W if len(out_dims[0]) == 3 and out_dims[0][2] > 0 else 2.0
    _constants_as_initializers(proto)
    try:
        net = onnx2torch.convert(proto)
    except Exception as e:
        raise InputError(path, f"onnx2torch cannot convert this model ({str(e).splitlines()[0]})") from None
    return KeypointModel(net, (H, W), n_keypoints, split, kind="onnx")


def normalise_crops(crops_bgr: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) BGR uint8/float crops → (N, 3, H, W) float32 as the detect backend feeds them."""
    from simspine.detect.spinepose_backend import POSE_MEAN, POSE_STD

    x = (np.asarray(crops_bgr, dtype=np.float32) - POSE_MEAN.astype(np.float32)) / POSE_STD.astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@torch.no_grad()
def predict(model: KeypointModel, image_bgr: np.ndarray, boxes_xyxy, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of people in one image: boxes (P, 4) x1, y1, x2, y2 px → ``(xy (P, K, 2) px,
    score (P, K))`` in image pixels, by the detect backend's crop and SimCC decoding (boxes may
    cross the image border: the crop is black there and decoding maps back through the same
    affine)."""
    from simspine.detect.spinepose_backend import (
        bbox_center_scale,
        decode_simcc,
        fix_aspect_ratio,
        warp_matrix,
    )

    from .crop import warp_crop

    H, W = model.input_hw
    boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    crops, cs = [], []
    for b in boxes:
        c, s = bbox_center_scale(b)
        s = fix_aspect_ratio(s, W / H)
        crops.append(warp_crop(image_bgr, warp_matrix(c, s, (W, H)), (W, H)))
        cs.append((c, s))
    model.eval()
    x = torch.from_numpy(normalise_crops(np.stack(crops))).to(device)
    sx, sy = (t.float().cpu().numpy() for t in model(x))
    xy, score = np.zeros((len(boxes), model.n_keypoints, 2)), np.zeros((len(boxes), model.n_keypoints))
    for i, (c, s) in enumerate(cs):
        xy[i], score[i] = (a[0] for a in decode_simcc(sx[i:i + 1], sy[i:i + 1], c, s, (W, H), model.split_ratio))
    return xy, score
