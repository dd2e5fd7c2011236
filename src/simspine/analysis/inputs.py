"""Read what ``simspine analyze`` accepts into :class:`SequenceData` (angles of one sequence).

Inputs (:func:`load_input`):

* a motion file (``.mot``/``.sto``, coordinates of the spine model): posed frame by frame on the
  generic prepared model (:mod:`simspine.biomech.fk`): geometric and keypoint Cobb angles and ROM;
* a 37-keypoint TRC (or any TRC naming the curve keypoints and a left/right pair): keypoint Cobb
  angles only;
* a ``rotations.csv`` written by simspine's FK stage: geometric Cobb angles (from the vertebral
  orientations relative to the pelvis) and ROM;
* an ``annotate`` output folder (``model/rotations.csv``, ``model/keypoints37.trc``, else
  ``model/ik.mot``), or an ``ik``/``fk`` output folder holding those files directly;
* a dataset store (HDF5, :mod:`simspine.dataset.store`: ours or the official release's file):
  every sequence; the store's subject and action.

Subject and action labels: the store's, else ``--subject``/``--action``, else from the name
(``S1_Walking``, ``S9-Phoning 1``: subject ``S<n>`` and the rest), else a synthetic session's
recorded action (``synth.json`` beside an ``annotate`` folder, as ``simspine demo`` writes), else
``unknown`` and the file or folder name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from simspine.analysis.cobb import CobbAngles, geometric_cobb_from_euler, keypoint_cobb
from simspine.errors import InputError


@dataclass
class SequenceData:
    """Analysed angles of one sequence. ``angles_deg``: model coordinates (deg) by name, for ROM."""

    name: str
    subject: str
    action: str
    source: str
    time: np.ndarray
    geometric: CobbAngles | None = None
    keypoints: CobbAngles | None = None
    angles_deg: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(len(self.time))

    def cobb(self, prefer: str = "geometric") -> CobbAngles | None:
        """The geometric angles when available (``prefer``), else the keypoint ones."""
        order = (self.geometric, self.keypoints) if prefer == "geometric" else (self.keypoints, self.geometric)
        return next((c for c in order if c is not None), None)


_NAME_RE = re.compile(r"^(S\d+)[ _.-]+(.+)$", re.IGNORECASE)


def labels_from_name(name: str) -> tuple[str | None, str | None]:
    """(subject, action) from a name like ``S1_Walking 1``; (None, None) when it does not match."""
    m = _NAME_RE.match(name.strip())
    if not m:
        return None, None
    return m.group(1).upper(), m.group(2).strip()


@cache
def _generic_kinematics():
    """One posable generic model per process (loading it takes about a second)."""
    from simspine.biomech.fk import Kinematics

    return Kinematics()


def _keypoint_angles(xyz: np.ndarray, names: list[str], model: Path | None = None) -> CobbAngles | None:
    """Keypoint-method angles; the per-level landmark constants are measured on ``model`` (the
    subject's model whose forward kinematics gave the keypoints) when given, else on the generic one."""
    try:
        return keypoint_cobb(xyz, names, model=model)
    except ValueError:
        return None


def read_rotations_csv(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, list[str]]:
    """``rotations.csv`` → (time (T,), intervertebral angles {name: (T,) deg}, segment Euler
    (T, S, 3) deg, segment bodies). Columns ``<coordinate>_deg`` and ``<body>_<label>_deg``."""
    from simspine.biomech.fk import EULER_LABELS, SPINE_SEGMENTS, intervertebral_coordinate_names

    path = Path(path)
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror or e})") from None
    if len(lines) < 2:
        raise InputError(path, "no frames (expected a header row and one row per frame)")
    header = [h.strip() for h in lines[0].split(",")]
    col = {h: j for j, h in enumerate(header)}
    # annotate adds text columns (region status): only the numeric ones are read
    numeric = [j for j, h in enumerate(header) if h == "time" or h.endswith("_deg")]
    try:
        rows = [ln.split(",") for ln in lines[1:]]
        data = np.full((len(rows), len(header)), np.nan)
        for i, r in enumerate(rows):
            for j in numeric:
                v = r[j].strip() if j < len(r) else ""
                data[i, j] = float(v) if v else np.nan
    except ValueError:
        raise InputError(path, f"row {i + 1}: a value of column {header[j]!r} is not a number") from None
    if "time" not in col:
        raise InputError(path, "no 'time' column: not a simspine rotations.csv")
    angles = {n: data[:, col[f"{n}_deg"]] for n in intervertebral_coordinate_names() if f"{n}_deg" in col}
    bodies = [b for b, _ in SPINE_SEGMENTS]
    seg = np.full((len(data), len(bodies), 3), np.nan)
    for i, b in enumerate(bodies):
        for k, lab in enumerate(EULER_LABELS):
            j = col.get(f"{b}_{lab}_deg")
            if j is not None:
                seg[:, i, k] = data[:, j]
    return data[:, col["time"]], angles, seg, bodies


def _subject_model(folder: Path) -> Path | None:
    """The model an ``ik``/``annotate`` run wrote its keypoints with: ``model_registered.osim``
    (marker placements registered to the subject) else ``model_scaled.osim``; None if neither."""
    for name in ("model_registered.osim", "model_scaled.osim"):
        if (folder / name).is_file():
            return folder / name
    return None


def _from_rotations_and_trc(rot_csv: Path | None, trc: Path | None, name: str, stride: int) -> SequenceData:
    from simspine.io.trc import read_trc

    time = geo = kp = None
    angles: dict = {}
    if rot_csv is not None:
        time, angles, seg, bodies = read_rotations_csv(rot_csv)
        time, seg = time[::stride], seg[::stride]
        angles = {k: v[::stride] for k, v in angles.items()}
        geo = geometric_cobb_from_euler(seg, bodies)
    if trc is not None:
        traj = read_trc(trc)
        kp = _keypoint_angles(traj.xyz[::stride], list(traj.names), _subject_model(trc.parent))
        if time is None:
            time = np.asarray(traj.time)[::stride]
    src = ", ".join(str(p) for p in (rot_csv, trc) if p is not None)
    return SequenceData(name, "unknown", name, src, np.asarray(time, float), geo, kp, angles)


def load_mot(path: str | os.PathLike, kin=None, stride: int = 1) -> SequenceData:
    """A coordinates file posed on the generic model: both Cobb methods and ROM."""
    from simspine.biomech.fk import coordinates_from_mot, run_fk

    kin = kin or _generic_kinematics()
    table = coordinates_from_mot(path, kin.coordinates)
    table.time, table.values = table.time[::stride], table.values[::stride]
    traj, rots = run_fk(kin, table)
    geo = geometric_cobb_from_euler(rots.segment_euler_deg, rots.segment_bodies)
    kp = _keypoint_angles(traj.xyz, list(traj.names))
    angles = {n: rots.intervertebral_deg[:, j] for j, n in enumerate(rots.intervertebral_names)}
    p = Path(path)
    return SequenceData(p.stem, "unknown", p.stem, str(p), np.asarray(table.time, float), geo, kp, angles)


def _annotate_labels(folder: Path) -> tuple[str | None, str | None]:
    """(subject, action) recorded by a synthetic session next to an annotate folder, if any."""
    from simspine.synth.session import written_config

    for cand in (folder.parent / "session", folder.parent, folder / "session"):
        cfg = written_config(cand)
        if cfg and cfg.get("action"):
            return f"seed{cfg.get('seed', 0)}", str(cfg["action"])
    return None, None


def load_folder(folder: Path, stride: int = 1, kin=None) -> SequenceData:
    """An ``annotate`` output folder (``model/``) or a folder with ``rotations.csv`` /
    ``keypoints37.trc`` / ``ik.mot`` directly (``ik``/``fk`` outputs)."""
    for d in (folder / "model", folder):
        rot, trc, mot = d / "rotations.csv", d / "keypoints37.trc", d / "ik.mot"
        if rot.is_file() or trc.is_file():
            seq = _from_rotations_and_trc(rot if rot.is_file() else None, trc if trc.is_file() else None,
                                          folder.name, stride)
            if seq.geometric is None and mot.is_file():
                mseq = load_mot(mot, kin, stride)
                seq.geometric, seq.angles_deg, seq.time = mseq.geometric, mseq.angles_deg, mseq.time
            break
        if mot.is_file():
            seq = load_mot(mot, kin, stride)
            seq.name = folder.name
            break
    else:
        raise InputError(folder, "no model/rotations.csv, model/keypoints37.trc or model/ik.mot here: not an "
                                 "annotate, ik or fk output folder")
    sub, act = _annotate_labels(folder)
    seq.subject, seq.action = sub or seq.subject, act or seq.action
    return seq


def load_store(path: Path, stride: int = 1, kin=None) -> list[SequenceData]:
    """Every sequence of a dataset store (HDF5)."""
    try:
        from simspine.dataset.store import Store
    except ImportError:
        raise InputError(path, "reading dataset stores is not available yet in this version (simspine.dataset "
                               "is not installed)") from None
    from simspine.biomech.fk import CoordinateTable, run_fk
    from simspine.biomech.model import coordinate_info
    from simspine.skeletons import spinetrack37

    out = []
    with Store(path) as st:
        axes = st.kinematic_axes
        mnames = st.markers_names
        rot_names = None
        for s in st.iter_sequences():
            kinem = np.asarray(s.kinematics, float)[::stride]
            T = len(kinem)
            t = s.timestamps[::stride] if s.timestamps is not None else np.arange(T) / float(s.attrs.get("rate_hz", 50.0))
            angles = {n: kinem[:, j] for j, n in enumerate(axes)}  # rotations in degrees in the store
            seg = s.rotations_segment_euler_deg
            if seg is not None:
                from simspine.biomech.fk import SPINE_SEGMENTS

                geo = geometric_cobb_from_euler(np.asarray(seg)[::stride], [b for b, _ in SPINE_SEGMENTS])
            else:
                kin = kin or _generic_kinematics()
                if rot_names is None:
                    rot_names = {c.name for c in coordinate_info(kin.model) if c.rotational}
                vals = np.array([np.deg2rad(kinem[:, j]) if n in rot_names else kinem[:, j] for j, n in enumerate(axes)]).T
                _, rots = run_fk(kin, CoordinateTable(np.asarray(t, float), list(axes), vals))
                geo = geometric_cobb_from_euler(rots.segment_euler_deg, rots.segment_bodies)
            if s.keypoints37 is not None:
                kp = _keypoint_angles(np.asarray(s.keypoints37)[::stride], list(spinetrack37().names))
            else:
                kp = _keypoint_angles(np.asarray(s.markers)[::stride], mnames)
            action = str(s.attrs.get("action") or labels_from_name(s.name)[1] or s.name)
            out.append(SequenceData(f"{s.subject}_{s.name}", s.subject, action, f"{path}:{s.subject}/{s.name}",
                                    np.asarray(t, float), geo, kp, angles))
    if not out:
        raise InputError(path, "the dataset store holds no sequence")
    return out


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def load_input(path: str | os.PathLike, subject: str | None = None, action: str | None = None,
               stride: int = 1, kin=None) -> list[SequenceData]:
    """Read one INPUT of ``simspine analyze`` (see the module docstring) into sequences."""
    from simspine.io.trc import read_trc

    p = Path(path)
    if not p.exists():
        raise InputError(p, "not found")
    if p.is_dir():
        seqs = [load_folder(p, stride, kin)]
    elif _is_hdf5(p) or p.suffix.lower() in (".h5", ".hdf5"):
        seqs = load_store(p, stride, kin)
    elif p.suffix.lower() in (".mot", ".sto"):
        seqs = [load_mot(p, kin, stride)]
    elif p.suffix.lower() == ".trc":
        traj = read_trc(p)
        kp = _keypoint_angles(traj.xyz[::stride], list(traj.names))
        if kp is None:
            raise InputError(p, "the keypoint Cobb method needs Hip, Spine_01 ... Spine_05, Neck and a left/right "
                                "pair (hips, latissimus or clavicles) named as in SpineTrack-37")
        seqs = [SequenceData(p.stem, "unknown", p.stem, str(p), np.asarray(traj.time)[::stride], None, kp, {})]
    elif p.name.endswith(".csv"):
        seqs = [_from_rotations_and_trc(p, None, p.stem, stride)]
    else:
        raise InputError(p, "not a motion (.mot/.sto), keypoints (.trc), rotations.csv, dataset store (.h5) or "
                            "output folder")
    for s in seqs:
        n_sub, n_act = labels_from_name(s.name)
        if s.subject == "unknown" and n_sub:
            s.subject = n_sub
        if s.action == s.name and n_act:
            s.action = n_act
        s.subject = subject or s.subject
        s.action = action or s.action
    return seqs
