"""The dataset store: one HDF5 file in the official SimSpine release's layout, plus our extras.

Layout (release part, read by code written for the official file)::

    metadata/kinematic_axes        (62,) bytes   model coordinates, release order
    metadata/markers_names         (15,) bytes   Hip, Spine_01 ... RLatissimus
    <S>/calibration/names          (V,) bytes    camera names
    <S>/calibration/size           (V, 2)        width, height (px)
    <S>/calibration/R, t, K, dist  (V,3,3), (V,3), (V,3,3), (V,5)  OpenCV convention:
                                   cv2.projectPoints(X, Rodrigues(R), t, K, dist), X in the
                                   calibration's Z-up world, metres
    <S>/<sequence>/markers         (T, 15, 3)    metres, OpenSim ground frame (Y up)
    <S>/<sequence>/kinematics      (T, 62)       rotations in degrees, translations in metres

Our extras, beside them under their own names (absent from the official file; readers return None)::

    metadata/markers_parents (15,), metadata/keypoints37_names (37,) bytes,
    metadata attrs: provenance_json (versions, options, build summary), format, frame, units
    <S>/model_scaled_osim          scalar string: the subject's scaled OpenSim model (XML)
    <S>/scaling_json               scalar string
    <S> attrs: split ("train" / "test")
    <S>/<sequence>/keypoints37     (T, 37, 3) m, Y up (SpineTrack-37 order)
    <S>/<sequence>/timestamps      (T,) s (50 Hz)
    <S>/<sequence>/keypoints2d     (C, T, 37, 3) px u, v, visibility (1 inside the image)
    <S>/<sequence>/boxes           (C, T, 4) px x, y, w, h (NaN when nothing visible)
    <S>/<sequence>/status          (T, 37) int8: 0 none, 1 observed, 2 filled, 3 inferred
                                   (:mod:`simspine.observation`; legend in metadata attr status_legend)
    <S>/<sequence>/region_status   (T, 3) int8, the same codes for the lumbar, thoracic, cervical spine
    <S>/<sequence>/rotations_intervertebral_deg (T, 21), rotations_segment_euler_deg (T, S, 3)
    <S>/<sequence>/h36m_joints_mm  (T, 32, 3) the Human3.6M input (Z up, mm)
    <S>/<sequence>/ik_rms          (T,) m
    <S>/<sequence> attrs: action, subaction, original_name, split, rate_hz, meta_json
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.cameras import Camera
from simspine.dataset.h36m import split_of
from simspine.dataset.release import kinematic_axes, markers_names, markers_parents
from simspine.errors import InputError
from simspine.observation import OBSERVED, REGIONS, STATUS_NAMES
from simspine.skeletons import spinetrack37

FORMAT = "simspine.dataset"
FORMAT_VERSION = 1
EXTRA_ARRAYS = ("keypoints37", "timestamps", "keypoints2d", "boxes", "status", "region_status",
                "rotations_intervertebral_deg",
                "rotations_segment_euler_deg", "h36m_joints_mm", "ik_rms")


def _bytes(names) -> np.ndarray:
    return np.array([str(n).encode() for n in names], dtype="S")


def _text(arr) -> list[str]:
    return [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(arr).ravel()]


def opencv_arrays(cameras: list[Camera]) -> dict[str, np.ndarray]:
    """``names, size, R, t, K, dist`` arrays of ``cameras`` in OpenCV's convention; Human3.6M's
    tangential distortion model is refitted to OpenCV's (largest error in ``fit_error_px``)."""
    cv = [c.converted("opencv", exact=False) for c in cameras]
    return {"names": _bytes([c.name for c in cv]), "size": np.array([c.size for c in cv], dtype=np.int64),
            "R": np.array([c.R for c in cv]), "t": np.array([c.t for c in cv]), "K": np.array([c.K for c in cv]),
            "dist": np.array([c.dist for c in cv]),
            "fit_error_px": np.array([getattr(c, "conversion_error_px", 0.0) for c in cv])}


def write_store(path: str | os.PathLike, subjects: dict[str, dict], results: list[dict], provenance: dict) -> Path:
    """Write the store atomically.

    Args:
        subjects: subject → ``{"cameras": [Camera], "model_xml": str | None, "scaling": dict | None}``.
        results: :func:`simspine.dataset.sequence.process_sequence` results.
        provenance: JSON-able (versions, options, summary).
    """
    import h5py

    from simspine.fileio import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        md = f.create_group("metadata")
        md["kinematic_axes"] = _bytes(kinematic_axes())
        md["markers_names"] = _bytes(markers_names())
        md["markers_parents"] = np.array(markers_parents(), dtype=np.int64)
        md["keypoints37_names"] = _bytes(spinetrack37().names)
        md.attrs["format"] = FORMAT
        md.attrs["format_version"] = FORMAT_VERSION
        md.attrs["frame"] = "markers/keypoints37: OpenSim ground (Y up), metres; calibration: Z-up world, metres"
        md.attrs["units"] = json.dumps({"markers": "m", "kinematics": "deg (pelvis_t*: m)", "keypoints2d": "px",
                                        "timestamps": "s"})
        md.attrs["provenance_json"] = json.dumps(provenance, default=str)
        md.attrs["status_legend"] = json.dumps(STATUS_NAMES)
        md.attrs["status_regions"] = json.dumps(list(REGIONS))
        for s, info in subjects.items():
            g = f.require_group(s)
            g.attrs["split"] = split_of(s)
            cal = g.create_group("calibration")
            for k, v in opencv_arrays(info["cameras"]).items():
                cal[k] = v
            if info.get("model_xml"):
                g["model_scaled_osim"] = info["model_xml"]
            if info.get("scaling") is not None:
                g["scaling_json"] = json.dumps(info["scaling"], default=str)
        for r in results:
            m = r["meta"]
            g = f.require_group(m["subject"]).create_group(m["sequence"])
            g.create_dataset("markers", data=r["markers"], compression="gzip")
            g.create_dataset("kinematics", data=r["kinematics"], compression="gzip")
            for k in EXTRA_ARRAYS:
                if k in r:
                    g.create_dataset(k, data=r[k], compression="gzip")
            g.attrs.update(action=m["action"], subaction=m["subaction"], original_name=m["original_name"],
                           split=split_of(m["subject"]), rate_hz=m["rate_hz"],
                           meta_json=json.dumps({**m, "rotation_names": r.get("rotation_names")}, default=str))
    return Path(path)


@dataclass
class Sequence:
    """One sequence read from a store; extras are None in the official release's file."""

    subject: str
    name: str
    markers: np.ndarray
    kinematics: np.ndarray
    attrs: dict
    extras: dict

    def __getattr__(self, key):
        if key in EXTRA_ARRAYS:
            return self.extras.get(key)
        raise AttributeError(key)

    @property
    def n_frames(self) -> int:
        return int(self.markers.shape[0])

    def observed_share(self) -> dict[str, float] | None:
        """Share of frames in which each spine region (lumbar, thoracic, cervical) was observed,
        from ``region_status``; None for a file without it (the official release)."""
        rs = self.extras.get("region_status")
        if rs is None:
            return None
        return {r: float((rs[:, j] == OBSERVED).mean()) if len(rs) else 0.0 for j, r in enumerate(REGIONS)}

    @property
    def action(self) -> str:
        """The canonical action (attribute ``action``; else the name before ``_``)."""
        return str(self.attrs.get("action", self.name.split("_")[0]))


class Store:
    """Read a SimSpine HDF5 file: ours or the official release's (same layout).

    ``with Store(path) as s: s.subjects(); s.sequences("S1"); s.sequence("S1", "Walking_1")``.
    """

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "dataset file not found")
        try:
            self.f = h5py.File(self.path, "r")
        except OSError as e:
            raise InputError(self.path, f"not a readable HDF5 file ({e})") from None
        if "metadata" not in self.f or "kinematic_axes" not in self.f["metadata"]:
            self.f.close()
            raise InputError(self.path, "no metadata/kinematic_axes: not a SimSpine dataset file")

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        self.f.close()

    @property
    def kinematic_axes(self) -> list[str]:
        return _text(self.f["metadata/kinematic_axes"][()])

    @property
    def markers_names(self) -> list[str]:
        return _text(self.f["metadata/markers_names"][()])

    @property
    def provenance(self) -> dict:
        p = self.f["metadata"].attrs.get("provenance_json")
        return json.loads(p) if p else {}

    @property
    def is_simspine_build(self) -> bool:
        return self.f["metadata"].attrs.get("format") == FORMAT

    def subjects(self) -> list[str]:
        return sorted((k for k in self.f if k != "metadata"), key=lambda s: (len(s), s))

    def sequences(self, subject: str) -> list[str]:
        return sorted(k for k in self.f[subject] if k != "calibration" and isinstance(self.f[subject][k], _group()))

    def calibration(self, subject: str) -> list[Camera]:
        """The subject's cameras (OpenCV distortion model, Z-up world, metres)."""
        c = self.f[f"{subject}/calibration"]
        names = _text(c["names"][()])
        return [Camera(n, tuple(int(v) for v in c["size"][i]), c["K"][i], c["dist"][i], c["R"][i], c["t"][i])
                for i, n in enumerate(names)]

    def model_xml(self, subject: str) -> str | None:
        d = self.f[subject].get("model_scaled_osim")
        if d is None:
            return None
        v = d[()]
        return v.decode() if isinstance(v, bytes) else str(v)

    def sequence(self, subject: str, name: str) -> Sequence:
        g = self.f[f"{subject}/{name}"]
        extras = {k: g[k][()] for k in EXTRA_ARRAYS if k in g}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
        if "meta_json" in attrs:
            attrs["meta"] = json.loads(attrs.pop("meta_json"))
        return Sequence(subject, name, g["markers"][()], g["kinematics"][()], attrs, extras)

    def iter_sequences(self):
        for s in self.subjects():
            for q in self.sequences(s):
                yield self.sequence(s, q)

    def select(self, subjects=None, actions=None, splits=None) -> list[tuple[str, str]]:
        """``(subject, sequence)`` names of the sequences of ``subjects`` (default: all), whose
        action is among ``actions`` (any Human3.6M spelling, whole names; default: all) and whose
        subject is in ``splits`` (``"train"``/``"test"``; default: all), in store order.

        Raises :class:`InputError` naming the file for a subject that is not in it."""
        from simspine.dataset.h36m import canonical_action

        have = self.subjects()
        if subjects:
            missing = [s for s in subjects if s not in have]
            if missing:
                raise InputError(self.path, f"subjects not in the store: {', '.join(missing)} (has {', '.join(have)})")
            have = list(subjects)
        if splits:
            have = [s for s in have if split_of(s) in set(splits)]
        wanted = {canonical_action(a) or a for a in actions} if actions else None
        out = []
        for s in have:
            for q in self.sequences(s):
                if wanted is None or str(self.f[f"{s}/{q}"].attrs.get("action", q.split("_")[0])) in wanted:
                    out.append((s, q))
        return out

    def walk(self, subjects=None, actions=None, splits=None, *, require=(), purpose: str = "this"):
        """Yield ``(cameras, Sequence)`` for the sequences :meth:`select` picks, one subject's
        calibration read once. ``require``: extra arrays (``"keypoints37"``, ``"keypoints2d"``...)
        every sequence must have; one without raises :class:`InputError` saying ``purpose``
        needs them (an official release file has none)."""
        cams: dict[str, list[Camera]] = {}
        for s, q in self.select(subjects, actions, splits):
            seq = self.sequence(s, q)
            lacking = [k for k in require if seq.extras.get(k) is None]
            if lacking:
                raise InputError(self.path, f"{s}/{q} has no {'/'.join(lacking)} (an official release file?): "
                                            f"{purpose} needs simspine's extras")
            if s not in cams:
                cams[s] = self.calibration(s)
            yield cams[s], seq


def _group():
    import h5py

    return h5py.Group
