"""2D spine detections of Human3.6M sequences from one npz file, ``data_2d_h36m_<source>.npz`` style.

Layout (VideoPose3D's 2D files, with SpineTrack-37 keypoints)::

    positions_2d  pickled dict  subject -> action key -> [per camera (N, 37, 2) or (N, 37, 3)]
                                pixels u, v (distorted, as detected) and optionally a confidence
    metadata      optional dict; ``cameras``: the camera names of the lists, either one list for
                  every subject or subject -> list (default: the order of
                  :func:`simspine.calibration.h36m_cameras`, Human3.6M's 54138969, 55011271,
                  58860488, 60457274, which is VideoPose3D's)

Action keys are matched to a sequence by its name in the dataset (``"Directions 1"``), its store
name (``"Directions_1"``) or, failing those, as whole action names (:func:`parse_sequence_name`:
``"TakingPhoto 1"`` is ``Photo_1``). Points that are NaN get confidence 0; without a confidence
column every finite point has confidence 1.

A sequence whose arrays hold another number of keypoints than 37, another number of frames than
the Human3.6M 3D markers, or another number of cameras than named, fails with an
:class:`~simspine.errors.InputError` naming the file, the sequence and the problem. The file is a
pickle (as VideoPose3D writes it): open only files you trust.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simspine.dataset.h36m import RATE_HZ, SequenceSpec, parse_sequence_name, read_npz_2d, timestamps
from simspine.errors import InputError
from simspine.skeletons import spinetrack37

#: The last file read in this process: (path, size, mtime) -> (positions_2d, metadata). A build
#: reads one file for every sequence; each Dask worker loads it once.
_CACHE: dict[tuple, tuple[dict, dict]] = {}


def is_npz(path) -> bool:
    """Whether ``path`` names an npz file (rather than a folder of OpenPose JSON)."""
    return path is not None and Path(path).suffix.lower() == ".npz"


def read_detections(path) -> tuple[dict, dict]:
    """``(positions_2d, metadata)`` of ``path``, cached per process while the file is unchanged."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        raise InputError(p, "2D detections file not found") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        pos, meta = read_npz_2d(p)
        if not isinstance(pos, dict):
            raise InputError(p, "'positions_2d' is not a dict subject -> action -> [per camera arrays]")
        _CACHE.clear()
        _CACHE[key] = (pos, meta if isinstance(meta, dict) else {})
    return _CACHE[key]


def _key_for(actions: dict, spec: SequenceSpec):
    for k in (spec.original_name, spec.name):
        if k in actions:
            return k
    for k in actions:
        try:
            if parse_sequence_name(str(k)) == (spec.action, spec.sub):
                return k
        except InputError:
            continue
    return None


def camera_names(meta: dict, subject: str, default: list[str]) -> list[str]:
    """Names of the cameras of ``subject``'s lists (``metadata['cameras']``, else ``default``)."""
    cams = meta.get("cameras")
    if isinstance(cams, dict):
        cams = cams.get(subject)
    return [str(c) for c in cams] if cams is not None else list(default)


def load_spine_2d_npz(path, spec: SequenceSpec, cameras, n_frames: int):
    """A :class:`simspine.io.session.Session2D` of ``spec``'s detections in the npz ``path`` on the
    3D clock (``n_frames`` at 50 Hz), over the ``cameras`` it has; None when the file has no
    entry for the sequence. Raises :class:`InputError` (see the module docstring)."""
    from simspine.io.session import Session2D

    pos, meta = read_detections(path)
    actions = pos.get(spec.subject)
    key = _key_for(actions, spec) if isinstance(actions, dict) else None
    if key is None:
        return None
    where = f"{spec.subject}/{key}"
    arrays = actions[key]
    if isinstance(arrays, np.ndarray) and arrays.ndim == 4:
        arrays = list(arrays)
    if not isinstance(arrays, (list, tuple)):
        raise InputError(path, f"{where}: expected a list of per-camera arrays, got {type(arrays).__name__}")
    names = camera_names(meta, spec.subject, [c.name for c in cameras])
    if len(arrays) != len(names):
        raise InputError(path, f"{where}: {len(arrays)} camera arrays for {len(names)} cameras "
                               f"({', '.join(names)})")
    by_name = {c.name: c for c in cameras}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(path, f"{where}: cameras {', '.join(unknown)} are not {spec.subject}'s "
                               f"({', '.join(by_name)})")
    K = len(spinetrack37())
    uv, conf = [], []
    for name, a in zip(names, arrays, strict=True):
        a = np.asarray(a, dtype=float)
        if a.ndim != 3 or a.shape[2] not in (2, 3):
            raise InputError(path, f"{where}, camera {name}: shape {a.shape}, expected (N, {K}, 2) or (N, {K}, 3)")
        if a.shape[1] != K:
            raise InputError(path, f"{where}, camera {name}: {a.shape[1]} keypoints per frame, expected {K} "
                                   "(SpineTrack-37 order)")
        if a.shape[0] != n_frames:
            raise InputError(path, f"{where}, camera {name}: 2D detections cover {a.shape[0]} frames but the "
                                   f"Human3.6M 3D markers have {n_frames}: 2D and 3D must have the same length")
        xy = a[..., :2].copy()
        c = np.clip(a[..., 2], 0.0, 1.0) if a.shape[2] == 3 else np.ones(a.shape[:2])
        bad = ~np.isfinite(xy).all(-1) | ~np.isfinite(c)
        xy[bad] = np.nan
        uv.append(xy)
        conf.append(np.where(bad, 0.0, c))
    return Session2D([by_name[n] for n in names], np.stack(uv), np.stack(conf), timestamps(n_frames, RATE_HZ),
                     list(spinetrack37().names), "SpineTrack-37", RATE_HZ, meta={"source": f"{path}:{where}"})


def write_spine_2d_npz(path, positions_2d: dict, metadata: dict | None = None) -> Path:
    """Write ``positions_2d`` (subject -> action key -> [per camera (N, 37, 2|3)]) and ``metadata``
    in the layout above (atomically)."""
    from simspine.fileio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, positions_2d=np.array(positions_2d, dtype=object),
                                metadata=np.array(metadata or {}, dtype=object))
    return Path(path)
