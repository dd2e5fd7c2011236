"""Lifting samples from a dataset store, keypoint variants and the per-joint normalisation.

A sample is one camera view of one frame: the 2D keypoints (u, v px) of the variant's keypoints in
that camera (the store's exact projections, ``source="gt"``, or detections read from OpenPose JSON,
``source=DIR``) and the same keypoints in that camera's frame (metres, OpenCV camera axes), taken
from the store's ``keypoints37`` (OpenSim ground, mapped to the calibration's Z-up world). Frames
are sampled at ``rate_hz`` (the paper: 1 Hz); a view is kept when all its keypoints are visible
(inside the image; detected with confidence > 0).

Normalisation (:class:`Normalizer`, as SimpleBaseline3D): 2D inputs z-scored per joint and axis
with the training set's mean and standard deviation; 3D targets root-centred (root: ``Hip``, the
sacrum, SpineTrack-37 id 19), the root left out, the other joints z-scored per joint and axis.
Decoding puts the root back at the origin, so predictions are root-relative.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simspine.errors import InputError
from simspine.metrics import ROOT

VARIANTS = ("spine", "full")


def variant_keypoints(variant: str) -> np.ndarray:
    """SpineTrack-37 ids of a variant: ``spine`` = ``spine15_simspine`` of ``data/spinetrack37.json``
    (lumbar, thoracic and cervical region keypoints: Hip, Spine_01-05, Neck, Neck_02-03, Head, Nose,
    clavicles, latissimus points), ``full`` = all 37."""
    from simspine.skeletons import spinetrack37

    sk = spinetrack37()
    if variant == "spine":
        return sk.subset("spine15_simspine")
    if variant == "full":
        return np.arange(len(sk))
    raise InputError(None, f"unknown lifting variant {variant!r} (choose from {', '.join(VARIANTS)})")


@dataclass
class LiftSamples:
    """Samples of one split: ``x2d`` (N, K, 2) px, ``y3d`` (N, K, 3) camera frame m, ``keypoints`` (K,)
    SpineTrack-37 ids, per sample ``action``, ``subject``, ``sequence``, ``camera``, ``frame``."""

    x2d: np.ndarray
    y3d: np.ndarray
    keypoints: np.ndarray
    action: np.ndarray
    subject: np.ndarray
    sequence: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    camera: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    frame: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.x2d)

    @property
    def root_index(self) -> int:
        """Column of the root keypoint (Hip) within ``keypoints``."""
        hit = np.flatnonzero(self.keypoints == ROOT)
        if not len(hit):
            raise InputError(None, "the keypoint set has no root (Hip, id 19)")
        return int(hit[0])


def load_samples(dataset, subjects, variant: str = "full", source: str = "gt", rate_hz: float = 1.0,
                 actions=None) -> LiftSamples:
    """Samples of ``subjects`` from the store ``dataset`` (see the module docstring).

    ``source``: ``"gt"`` for the store's 2D projections, else a folder of detections laid out as
    ``simspine bench multiview --pred-2d`` reads them.
    """
    from simspine.dataset.store import Store
    from simspine.frames import yup_to_zup

    ids = variant_keypoints(variant)
    cols = {k: [] for k in ("x2d", "y3d", "action", "subject", "sequence", "camera", "frame")}
    dropped = 0
    with Store(dataset) as st:
        for cams, seq in st.walk(subjects, actions, require=("keypoints37", "keypoints2d"), purpose="lifting"):
            s, q, action = seq.subject, seq.name, seq.action
            rate = float(seq.attrs.get("rate_hz", 50.0))
            step = max(1, int(round(rate / rate_hz))) if rate_hz > 0 else 1
            sel = np.arange(0, seq.n_frames, step)
            if source == "gt":
                k2 = seq.keypoints2d[:, sel]
                uv, ok = k2[..., :2], k2[..., 2] > 0
            else:
                from simspine.bench.multiview import _detections

                det = _detections(source, s, q, str(seq.attrs.get("original_name", q)), cams, seq.n_frames)
                if det is None:
                    raise InputError(source, f"no detections for {s}/{q}")
                uv, ok = det[0][:, sel], (det[1][:, sel] > 0) & np.isfinite(det[0][:, sel]).all(-1)
            Xw = yup_to_zup(seq.keypoints37[sel][:, ids])
            for c, cam in enumerate(cams):
                keep = ok[c][:, ids].all(-1)
                dropped += int((~keep).sum())
                if not keep.any():
                    continue
                n = int(keep.sum())
                cols["x2d"].append(uv[c][keep][:, ids])
                cols["y3d"].append(cam.world_to_camera(Xw[keep].reshape(-1, 3)).reshape(n, len(ids), 3))
                cols["action"] += [action] * n
                cols["subject"] += [s] * n
                cols["sequence"] += [q] * n
                cols["camera"] += [cam.name] * n
                cols["frame"].append(sel[keep])
    K = len(ids)
    return LiftSamples(
        x2d=np.concatenate(cols["x2d"]) if cols["x2d"] else np.zeros((0, K, 2)),
        y3d=np.concatenate(cols["y3d"]) if cols["y3d"] else np.zeros((0, K, 3)),
        keypoints=ids, action=np.array(cols["action"], dtype=str), subject=np.array(cols["subject"], dtype=str),
        sequence=np.array(cols["sequence"], dtype=str), camera=np.array(cols["camera"], dtype=str),
        frame=np.concatenate(cols["frame"]) if cols["frame"] else np.zeros(0, dtype=int), dropped=dropped)


@dataclass
class Normalizer:
    """Per-joint statistics: 2D ``mean2d``/``std2d`` (K, 2); 3D ``mean3d``/``std3d`` (K, 3) of the
    root-centred targets (the root's row is 0 / 1 and unused); ``root`` column index."""

    mean2d: np.ndarray
    std2d: np.ndarray
    mean3d: np.ndarray
    std3d: np.ndarray
    root: int

    @classmethod
    def fit(cls, x2d: np.ndarray, y3d: np.ndarray, root: int, eps: float = 1e-8) -> Normalizer:
        y = y3d - y3d[:, root:root + 1]
        std3d = y.std(0)
        std3d[root] = 1.0
        return cls(x2d.mean(0), np.maximum(x2d.std(0), eps), y.mean(0), np.maximum(std3d, eps), int(root))

    @property
    def others(self) -> np.ndarray:
        return np.array([k for k in range(len(self.mean2d)) if k != self.root])

    def encode_2d(self, x2d: np.ndarray) -> np.ndarray:
        """(N, K, 2) px → (N, 2K) z-scores."""
        return ((np.asarray(x2d, dtype=float) - self.mean2d) / self.std2d).reshape(len(x2d), -1)

    def encode_3d(self, y3d: np.ndarray) -> np.ndarray:
        """(N, K, 3) m → (N, 3(K-1)): root-centred, root left out, z-scored per joint."""
        y = np.asarray(y3d, dtype=float)
        y = y - y[:, self.root:self.root + 1]
        o = self.others
        return ((y[:, o] - self.mean3d[o]) / self.std3d[o]).reshape(len(y), -1)

    def decode_3d(self, z: np.ndarray) -> np.ndarray:
        """(N, 3(K-1)) → (N, K, 3) m, root-relative (the root put back at the origin)."""
        z = np.asarray(z, dtype=float)
        o = self.others
        out = np.zeros((len(z), len(self.mean2d), 3))
        out[:, o] = z.reshape(len(z), len(o), 3) * self.std3d[o] + self.mean3d[o]
        return out

    def to_dict(self) -> dict:
        return {"mean2d": self.mean2d, "std2d": self.std2d, "mean3d": self.mean3d, "std3d": self.std3d,
                "root": self.root}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(*(np.asarray(d[k], dtype=float) for k in ("mean2d", "std2d", "mean3d", "std3d")), int(d["root"]))
