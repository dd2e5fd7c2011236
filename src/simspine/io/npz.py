"""``.npz`` files: written atomically, read with every failure reported as an :class:`InputError`.

:func:`write_trajectories_npz` / :func:`read_trajectories_npz` store :class:`Trajectories` with
what a TRC cannot hold (confidences, metadata, the world frame), plus any extra arrays; the
pipeline's stage outputs and the triangulation output use them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import atomic_path
from simspine.trajectories import Trajectories

_TRAJ_KEYS = ("time", "xyz", "conf", "names", "meta_json")


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """Write ``arrays`` to a compressed ``.npz`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return Path(path)


def read_npz(path: str | os.PathLike, what: str = "file") -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (no pickles). Raises :class:`InputError` naming the file when it
    is missing, unreadable, or not a valid ``.npz`` (``what`` says what it should have been)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except OSError as e:
        raise InputError(path, f"cannot read {what}: {e.strerror or e}") from None
    except Exception as e:  # zip, format and pickle errors all mean the same to a user
        raise InputError(path, f"not a valid {what} ({type(e).__name__}: {e})") from None


def write_trajectories_npz(path: str | os.PathLike, traj: Trajectories, arrays: dict | None = None,
                           meta: dict | None = None) -> Path:
    """Write ``traj`` (time, xyz in metres, conf, names, frame and metadata) atomically.

    Array-valued entries of ``traj.meta`` are stored as arrays and come back in ``meta`` on
    reading; ``arrays`` are more arrays stored beside them (not read back into the trajectories);
    ``meta`` adds entries to the file's ``meta_json`` (units, shapes of the extra arrays, ...).
    """
    meta_arrays = {k: np.asarray(v) for k, v in traj.meta.items() if isinstance(v, np.ndarray)}
    info = {"frame": traj.frame, "units": {"xyz": "m", "time": "s"}, "names": traj.names,
            "meta": {k: v for k, v in traj.meta.items() if k not in meta_arrays},
            "meta_arrays": sorted(meta_arrays), **(meta or {})}
    return save_npz(path, time=traj.time, xyz=traj.xyz, conf=traj.conf, names=np.array(traj.names, dtype=str),
                    meta_json=np.array(json.dumps(info, default=str)), **meta_arrays, **(arrays or {}))


def read_trajectories_npz(path: str | os.PathLike, what: str = "trajectory file") -> Trajectories:
    """Read a file written by :func:`write_trajectories_npz`; any problem is an :class:`InputError`."""
    d = read_npz(path, what)
    try:
        info = json.loads(str(d["meta_json"]))
        meta = {**info.get("meta", {}), **{k: d[k] for k in info.get("meta_arrays", [])}}
        return Trajectories(d["time"], list(d["names"]), d["xyz"], d["conf"], info["frame"], meta)
    except (KeyError, ValueError, TypeError) as e:
        problem = getattr(e, "problem", None) or f"{type(e).__name__}: {e}"
        raise InputError(path, f"not a valid {what} ({problem})") from None
