"""A PyTorch ``Dataset`` over a SimSpine store: frames or windows of frames across sequences.

``StoreFrames(path, subjects=, actions=, splits=, cameras=, window=, stride=, per_camera=, fields=)``
indexes every selected sequence once (:meth:`simspine.dataset.store.Store.select`), then reads
each sample from the HDF5 file on demand. The file is opened lazily in the process that reads
(h5py handles do not survive ``fork``: a handle opened before a ``DataLoader`` starts its workers
is not reused by them; each worker opens its own on its first sample, found by a pid check, and a
pickled dataset carries no handle). Works with ``DataLoader(num_workers=N)`` as is.

A sample is a dict of numpy arrays (``float32``; ``status`` ``int64``), which ``DataLoader``'s
default collate turns into tensors, plus ``subject``, ``sequence``, ``action`` (strings) and
``frame`` (the first frame's index). Shapes are per frame; with ``window=W`` every array gets a
leading time axis of ``W`` (``stride``: frames between window starts). Fields (``fields=``):

==========================  =============================  ==================================================
field                       shape (per frame)              meaning, units
==========================  =============================  ==================================================
``keypoints3d``             (37, 3)                        SpineTrack-37 keypoints, metres, OpenSim ground (Y up)
``keypoints2d``             (C, 37, 3)                     u, v px and visibility (1 inside the image), per
                                                           selected camera (``per_camera``: (37, 3))
``keypoints3d_camera``      (C, 37, 3)                     the keypoints in each camera's frame (OpenCV: x right,
                                                           y down, z forward), metres (``per_camera``: (37, 3))
``markers``                 (15, 3)                        the release's 15 markers, metres, Y up
``kinematics``              (62,)                          model coordinates, degrees (pelvis_t*: metres)
``rotations``               (21,)                          intervertebral rotations, degrees
``status``                  (37,)                          0 none, 1 observed, 2 filled, 3 inferred
                                                           (:mod:`simspine.observation`)
``timestamps``              ()                             seconds from the sequence's start
==========================  =============================  ==================================================

``per_camera=True`` makes one sample per frame (or window) *and camera* (adds ``camera``, its
name), the form 2D→3D lifting trains on. ``cameras``: camera names to keep (default: all of each
subject's). An official release file has only ``markers`` and ``kinematics``; asking it for
another field raises :class:`~simspine.errors.InputError` when the dataset is made.

torch is imported by this module only (the base class, when installed); ``simspine`` and
``simspine.dataset`` import without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.errors import InputError

try:  # a torch Dataset when torch is there (isinstance checks, ConcatDataset); any DataLoader takes it anyway
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover - the package without its 'lift' extra
    _Base = object

#: field -> the store array it is read from
SOURCES = {"keypoints3d": "keypoints37", "keypoints2d": "keypoints2d", "keypoints3d_camera": "keypoints37",
           "markers": "markers", "kinematics": "kinematics", "rotations": "rotations_intervertebral_deg",
           "status": "status", "timestamps": "timestamps"}
DEFAULT_FIELDS = ("keypoints3d", "keypoints2d", "kinematics", "rotations", "status")


@dataclass(frozen=True)
class _Seq:
    subject: str
    name: str
    action: str
    n_frames: int
    cams: tuple[int, ...]  # indices into the subject's calibration
    cam_names: tuple[str, ...]
    R: np.ndarray  # (C, 3, 3) of the selected cameras, world Z up -> camera
    t: np.ndarray  # (C, 3) metres


class StoreFrames(_Base):
    """Frames (``window=None``) or windows of a SimSpine store as samples; see the module docstring.

    Args:
        path: the store (``.h5``, ours or the official release's layout).
        subjects, actions, splits: filters (:meth:`simspine.dataset.store.Store.select`).
        cameras: camera names to keep (default: all).
        window: frames per sample (None: single frames, no time axis); stride: frames between starts.
        per_camera: one sample per camera (see the module docstring).
        fields: what each sample holds (:data:`SOURCES`; default :data:`DEFAULT_FIELDS`).
    """

    def __init__(self, path, subjects=None, actions=None, splits=None, cameras=None, window: int | None = None,
                 stride: int = 1, per_camera: bool = False, fields=DEFAULT_FIELDS):
        from simspine.dataset.store import Store

        self.path = Path(path)
        self.fields = tuple(fields)
        unknown = [f for f in self.fields if f not in SOURCES]
        if unknown:
            raise InputError(None, f"unknown fields {', '.join(unknown)} (choose from {', '.join(SOURCES)})")
        if (window is not None and window < 1) or stride < 1:
            raise InputError(None, f"window ({window}) and stride ({stride}) must be positive")
        self.window, self.stride, self.per_camera = window, int(stride), bool(per_camera)
        self.seqs: list[_Seq] = []
        starts, seq_ids = [], []
        with Store(self.path) as st:
            calib = {}
            for s, q in st.select(subjects, actions, splits):
                g = st.f[f"{s}/{q}"]
                lacking = sorted({SOURCES[f] for f in self.fields} - set(g))
                if lacking:
                    raise InputError(self.path, f"{s}/{q} has no {', '.join(lacking)} (an official release file "
                                                "has only markers and kinematics)")
                if s not in calib:
                    cams = st.calibration(s)
                    calib[s] = ([c.name for c in cams], np.array([c.R for c in cams]), np.array([c.t for c in cams]))
                names, R, t = calib[s]
                keep = [i for i, n in enumerate(names) if cameras is None or n in cameras]
                if not keep:
                    raise InputError(self.path, f"{s} has none of the cameras {', '.join(cameras)} "
                                                f"(has {', '.join(names)})")
                T = int(g["markers"].shape[0])
                self.seqs.append(_Seq(s, q, str(g.attrs.get("action", q.split("_")[0])), T, tuple(keep),
                                      tuple(names[i] for i in keep), R[keep], t[keep]))
                w = window or 1
                n = max(0, (T - w) // self.stride + 1)
                starts.append(np.arange(n) * self.stride)
                seq_ids.append(np.full(n, len(self.seqs) - 1))
        self._start = np.concatenate(starts) if starts else np.zeros(0, int)
        self._seq = np.concatenate(seq_ids) if seq_ids else np.zeros(0, int)
        self._h5 = None
        self._pid = None

    # ---- the file, per process -----------------------------------------------------------------
    def _file(self):
        """The HDF5 file, opened on first use in this process (a worker forked after the parent
        opened it opens its own)."""
        if self._h5 is None or self._pid != os.getpid():
            import h5py

            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_h5"] = d["_pid"] = None  # a handle does not travel to another process
        return d

    def close(self) -> None:
        """Close this process's handle (reopened on the next sample)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None

    # ---- samples -------------------------------------------------------------------------------
    def __len__(self) -> int:
        n = len(self._start)
        return n * self._n_cams() if self.per_camera else n

    def _n_cams(self) -> int:
        counts = {len(q.cams) for q in self.seqs}
        if len(counts) > 1:
            raise InputError(self.path, f"per_camera needs the same number of cameras in every sequence "
                                        f"(found {sorted(counts)}): choose them with cameras=")
        return counts.pop() if counts else 0

    def locate(self, index: int) -> tuple[str, str, int, str | None]:
        """``(subject, sequence, first frame, camera name or None)`` of sample ``index``."""
        i, c = (divmod(index, self._n_cams()) if self.per_camera else (index, None))
        q = self.seqs[int(self._seq[i])]
        return q.subject, q.name, int(self._start[i]), None if c is None else q.cam_names[c]

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        i, c = (divmod(index, self._n_cams()) if self.per_camera else (index, None))
        q = self.seqs[int(self._seq[i])]
        t0 = int(self._start[i])
        sl = slice(t0, t0 + (self.window or 1))
        g = self._file()[f"{q.subject}/{q.name}"]
        out: dict = {"subject": q.subject, "sequence": q.name, "action": q.action, "frame": t0}
        cams = list(q.cams) if c is None else [q.cams[c]]
        for f in self.fields:
            if f == "keypoints2d":
                a = np.moveaxis(g["keypoints2d"][cams, sl], 0, 1)  # (C, W, 37, 3) -> time first
            elif f == "keypoints3d_camera":
                a = self._camera_frame(g["keypoints37"][sl], q, c)
            else:
                a = g[SOURCES[f]][sl]
            a = a[:, 0] if c is not None and f in ("keypoints2d", "keypoints3d_camera") else a
            a = np.asarray(a, dtype=np.int64 if f == "status" else np.float32)
            out[f] = a if self.window else a[0]
        if c is not None:
            out["camera"] = q.cam_names[c]
        return out

    @staticmethod
    def _camera_frame(kp_yup: np.ndarray, q: _Seq, c: int | None) -> np.ndarray:
        """(W, 37, 3) Y-up keypoints -> (W, C, 37, 3) in the selected cameras' frames."""
        from simspine.frames import yup_to_zup

        X = yup_to_zup(kp_yup)
        R, t = (q.R, q.t) if c is None else (q.R[c:c + 1], q.t[c:c + 1])
        return np.einsum("cij,wkj->wcki", R, X) + t[None, :, None, :]

