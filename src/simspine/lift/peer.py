"""The spinepose package's SimSpine lifter (an ONNX file, 37×2 → 37×3) as a peer in ``bench lift``.

What is known of its form (spinepose 2.1's ``DefaultPoseLifter``): the input is (N, 37, 2) float32
SpineTrack-37 keypoints in *normalised camera coordinates* ``((u - cx) / fx, (v - cy) / fy)`` from
the camera intrinsics (spinepose estimates them from the image size and an 84° diagonal field of
view when not given; here the store's calibrated ``K`` is used), keypoints scored below 0.5 set to
0, then ``(x - mean) / std`` with mean 0 and std 1 by default; the first output is reshaped to
(N, 37, 3) camera-frame (OpenCV axes) points and made root-relative by subtracting keypoint 19
(``Hip``). Its output unit is not fixed: spinepose rescales the first person to a 1.84 m subject
height. A model whose batch axis is fixed to 1 is run one sample at a time, as spinepose does.

None of this can be checked against the published file here (nothing is downloaded), so every
choice is an explicit option of :class:`PeerOptions`: ``input`` ``"camera"`` (the above) or
``"pixels"`` (raw px), ``mean`` / ``std`` of the input, ``metres_per_unit`` of the output, or
``subject_height`` (m) to rescale so the median predicted height — Hip→Neck→Head plus the mean of
the legs Hip→knee→ankle→heel, spinepose's measure — is that height. P-MPJPE does not depend on the
scale; root-relative MPJPE does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simspine.errors import InputError
from simspine.metrics import ROOT

K37 = 37


@dataclass
class PeerOptions:
    """How 2D goes into the peer and how its output comes out (see the module docstring)."""

    input: str = "camera"            # "camera": (u - cx) / fx, (v - cy) / fy; "pixels": raw px
    mean: tuple[float, float] = (0.0, 0.0)
    std: tuple[float, float] = (1.0, 1.0)
    metres_per_unit: float = 1.0
    subject_height: float | None = None  # m; overrides metres_per_unit when given


def peer_inputs(x2d: np.ndarray, intrinsics: np.ndarray | None, opts: PeerOptions) -> np.ndarray:
    """(N, 37, 2) float32 model input of raw 2D ``x2d`` (N, 37, 2) px; ``intrinsics`` (N, 3, 3) per
    sample (needed for ``input="camera"``)."""
    x = np.asarray(x2d, dtype=float)
    if x.ndim != 3 or x.shape[1:] != (K37, 2):
        raise InputError(None, f"the peer lifter takes (N, 37, 2) keypoints, got {x.shape}")
    if opts.input == "camera":
        if intrinsics is None:
            raise InputError(None, "the peer's camera-normalised input needs the intrinsics of each sample")
        Kc = np.asarray(intrinsics, dtype=float)
        f = np.stack([Kc[:, 0, 0], Kc[:, 1, 1]], -1)[:, None]
        c = np.stack([Kc[:, 0, 2], Kc[:, 1, 2]], -1)[:, None]
        x = (x - c) / f
    elif opts.input != "pixels":
        raise InputError(None, f"unknown peer input normalisation {opts.input!r} (camera or pixels)")
    x = np.nan_to_num(x, nan=0.0)  # an unseen keypoint goes in as 0, as spinepose feeds it
    return ((x - np.asarray(opts.mean)) / np.asarray(opts.std)).astype(np.float32)


def run_onnx(path, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Raw first output of the ONNX model at ``path`` on ``x`` (N, 37, 2), reshaped to (N, 37, 3)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
        raise InputError(path, f"not a loadable ONNX model ({str(e).splitlines()[0]})") from None
    inp = sess.get_inputs()[0]
    fixed_one = len(inp.shape) > 0 and inp.shape[0] == 1
    step = 1 if fixed_one else batch
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i:i + step]
        if len(inp.shape) == 2:  # a model taking flat (N, 74) input
            chunk = chunk.reshape(len(chunk), -1)
        outs.append(np.asarray(sess.run(None, {inp.name: chunk})[0], dtype=float))
    y = np.concatenate(outs) if outs else np.zeros((0, K37 * 3))
    if y.size != len(x) * K37 * 3:
        raise InputError(path, f"output of shape {y.shape} for {len(x)} samples: expected (N, 37, 3)")
    return y.reshape(len(x), K37, 3)


def predicted_height(y: np.ndarray) -> np.ndarray:
    """(N,) spinepose's height measure of (N, 37, 3) poses: Hip→Neck→Head plus the mean of the two
    legs Hip→knee→ankle→heel (in the poses' unit)."""
    from simspine.skeletons import spinetrack37

    names = list(spinetrack37().names)

    def chain(*joints):
        idx = [names.index(j) for j in joints]
        return sum(np.linalg.norm(y[:, b] - y[:, a], axis=-1) for a, b in zip(idx[:-1], idx[1:], strict=True))

    return chain("Hip", "Neck", "Head") + 0.5 * (chain("Hip", "LKnee", "LAnkle", "LHeel")
                                                 + chain("Hip", "RKnee", "RAnkle", "RHeel"))


def peer_predict(path, x2d: np.ndarray, intrinsics: np.ndarray | None, opts: PeerOptions | None = None) -> np.ndarray:
    """Root-relative camera-frame 3D (N, 37, 3) m of the peer ONNX lifter on raw 2D (N, 37, 2) px."""
    opts = opts or PeerOptions()
    y = run_onnx(path, peer_inputs(x2d, intrinsics, opts))
    y = y - y[:, ROOT:ROOT + 1]
    if opts.subject_height is not None and len(y):
        h = float(np.median(predicted_height(y)))
        if not h > 1e-9:
            raise InputError(path, "the peer's predicted poses have no height: cannot scale to --peer-height")
        return y * (opts.subject_height / h)
    return y * float(opts.metres_per_unit)


def sample_intrinsics(dataset, samples) -> np.ndarray:
    """(N, 3, 3) calibrated intrinsics of each sample's camera, from the store's calibrations."""
    from simspine.dataset.store import Store

    out = np.zeros((len(samples), 3, 3))
    with Store(dataset) as st:
        for s in dict.fromkeys(samples.subject.tolist()):
            for cam in st.calibration(s):
                out[(samples.subject == s) & (samples.camera == cam.name)] = cam.K
    if len(out) and not (out[:, 2, 2] == 1).all():
        raise InputError(dataset, "some samples' cameras are not in the store's calibrations")
    return out
