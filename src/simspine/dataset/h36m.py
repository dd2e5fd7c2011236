"""Human3.6M readers: raw ``D3_Positions`` CDF files, the preprocessed npz files, action names, splits.

Facts (Human3.6M's layout, as the dataset ships it):

* subjects S1 S5 S6 S7 S8 (train) and S9 S11 (test); 50 Hz; 15 actions;
* raw 3D: ``<root>/S*/MyPoseFeatures/D3_Positions/<Action>[ <n>].cdf``, variable ``Pose`` →
  (N, 32, 3) millimetres, world frame Z up (32-joint order: :func:`simspine.skeletons.h36m32`);
* preprocessed: ``data_3d_h36m.npz`` (key ``positions_3d``: dict subject → action → (N, 32, 3)
  metres) and ``data_2d_h36m_<source>.npz`` (key ``positions_2d``: subject → action → list of
  (N, J, 2) per camera, pixels).

Action names: S1 calls two actions ``TakingPhoto`` and ``WalkingDog`` (``Photo`` and ``WalkDog``
elsewhere); ``Sitting`` is a prefix of ``SittingDown`` and ``Walking`` of ``WalkDog`` /
``WalkTogether``, so names are matched whole, never by prefix (:func:`parse_sequence_name`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simspine.errors import InputError

RATE_HZ = 50.0
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
SUBJECTS = TRAIN_SUBJECTS + TEST_SUBJECTS
#: The 15 actions under their canonical (most common) names.
ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
           "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether")
#: Other spellings found in the dataset → canonical name (S1's files).
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
D3_DIR = ("MyPoseFeatures", "D3_Positions")


def split_of(subject: str) -> str:
    """``"train"`` or ``"test"`` for a Human3.6M subject; other names are ``"other"``."""
    return "train" if subject in TRAIN_SUBJECTS else "test" if subject in TEST_SUBJECTS else "other"


def canonical_action(name: str) -> str | None:
    """The canonical action of an action word (``"TakingPhoto"`` → ``"Photo"``), matched whole
    and case-insensitively; None for an unknown word."""
    word = name.strip().replace("_", "")
    for a in ACTIONS + tuple(ACTION_ALIASES):
        if a.lower() == word.lower():
            return ACTION_ALIASES.get(a, a)
    return None


def parse_sequence_name(stem: str) -> tuple[str, str]:
    """A file stem or npz key (``"Directions 1"``, ``"TakingPhoto"``, ``"WalkDog_1"``) → (canonical
    action, sub-action number as text, ``""`` when none). Raises :class:`InputError` for a name
    that is not one of the 15 actions."""
    m = re.fullmatch(r"\s*([A-Za-z]+)(?:[ _.-]*(\d+))?\s*", stem)
    action = canonical_action(m.group(1)) if m else None
    if action is None:
        raise InputError(None, f"{stem!r} is not a Human3.6M action (expected one of {', '.join(ACTIONS)}, "
                               "optionally followed by a number)")
    return action, (m.group(2) or "")


def sequence_id(action: str, sub: str) -> str:
    """Name of a sequence in the store and in file names: ``"Directions_1"``, ``"Photo"``."""
    return f"{action}_{sub}" if sub else action


def action_selected(action: str, wanted) -> bool:
    """Whether canonical ``action`` is among ``wanted`` (any spelling; whole names: ``Sitting``
    does not select ``SittingDown``). ``wanted`` None selects everything."""
    if not wanted:
        return True
    canon = set()
    for w in wanted:
        c = canonical_action(w)
        if c is None:
            raise InputError(None, f"unknown action {w!r} (choose from {', '.join(ACTIONS)})")
        canon.add(c)
    return action in canon


@dataclass(frozen=True)
class SequenceSpec:
    """One Human3.6M sequence to build.

    Attributes:
        subject: ``"S1"`` ...; action: canonical action; sub: sub-action number text or ``""``.
        source: ``"cdf"`` (``path`` is the CDF file) or ``"npz"`` (``path`` is data_3d_h36m.npz and
            ``key`` the action key inside it).
        original_name: the name in the dataset (file stem or npz key).
    """

    subject: str
    action: str
    sub: str
    source: str
    path: str
    key: str = ""
    original_name: str = ""

    @property
    def name(self) -> str:
        return sequence_id(self.action, self.sub)

    @property
    def uid(self) -> str:
        return f"{self.subject}/{self.name}"


def read_cdf_pose(path: str | os.PathLike) -> np.ndarray:
    """``Pose`` of a ``D3_Positions`` CDF file → (N, 32, 3) float64, millimetres, Z-up world.

    Raises :class:`InputError` naming the file for an unreadable, truncated or malformed file.
    """
    import cdflib

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "Human3.6M CDF file not found")
    try:
        f = cdflib.CDF(str(p))
        info = f.cdf_info()
        if "Pose" not in list(info.zVariables) + list(info.rVariables):
            raise InputError(p, "no 'Pose' variable: not a Human3.6M D3_Positions file")
        pose = np.asarray(f.varget("Pose"), dtype=float)
    except InputError:
        raise
    except Exception as e:  # cdflib raises many types on damaged files
        raise InputError(p, f"cannot read the CDF file (truncated or damaged?): {type(e).__name__}: {e}") from None
    if pose.size == 0 or pose.size % 96:
        raise InputError(p, f"'Pose' has {pose.size} values, not a multiple of 32 joints x 3 (truncated?)")
    pose = pose.reshape(-1, 32, 3)
    if not np.isfinite(pose).all():
        raise InputError(p, "'Pose' contains NaN or infinite values")
    return pose


def write_cdf_pose(path: str | os.PathLike, joints_mm: np.ndarray) -> Path:
    """Write (N, 32, 3) millimetre joints as a ``D3_Positions``-style CDF (``Pose``: (1, N, 96)),
    as the dataset stores them (for tests and for converting other captures)."""
    from cdflib.cdfwrite import CDF

    from simspine.fileio import atomic_path

    j = np.asarray(joints_mm, dtype=float)
    if j.ndim != 3 or j.shape[1:] != (32, 3):
        raise InputError(path, f"joints must be (N, 32, 3), got {j.shape}")
    with atomic_path(path) as tmp:
        tmp.unlink()  # cdflib refuses to overwrite
        c = CDF(str(tmp))
        c.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1, "Rec_Vary": True,
                     "Dim_Sizes": [j.shape[0], 96]}, var_data=j.reshape(1, -1, 96))
        c.close()
    return Path(path)


def read_npz_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``data_3d_h36m.npz`` → {subject: {action key: (N, 32, 3) metres}}.

    The file stores a pickled dict (as VideoPose3D writes it), so it is loaded with
    ``allow_pickle=True``: open only files you trust.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=True) as z:
            if "positions_3d" not in z.files:
                raise InputError(p, f"no 'positions_3d' entry (has {', '.join(z.files)}): not data_3d_h36m.npz")
            data = z["positions_3d"].item()
    except InputError:
        raise
    except Exception as e:
        raise InputError(p, f"cannot read the preprocessed Human3.6M file: {type(e).__name__}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(p, "'positions_3d' is not a dict subject -> action -> array")
    return data


def read_npz_2d(path: str | os.PathLike) -> tuple[dict, dict]:
    """``data_2d_h36m_<source>.npz`` → (positions_2d {subject: {action: [per camera (N, J, 2)]}},
    metadata dict or {})."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=True) as z:
            pos = z["positions_2d"].item()
            meta = z["metadata"].item() if "metadata" in z.files else {}
    except Exception as e:
        raise InputError(p, f"cannot read the 2D Human3.6M file: {type(e).__name__}: {e}") from None
    return pos, meta


def timestamps(n: int, rate_hz: float = RATE_HZ) -> np.ndarray:
    """(n,) seconds of Human3.6M frames from 0 at ``rate_hz``."""
    return np.arange(int(n)) / float(rate_hz)


@dataclass
class Listing:
    """Sequences found under a Human3.6M root, and the problems found while listing them
    (uid or subject → message), which the build reports as failures."""

    sequences: list[SequenceSpec]
    problems: dict[str, str]


def find_sequences(root: str | os.PathLike, subjects=None, actions=None) -> Listing:
    """List the sequences of a Human3.6M tree (raw CDF layout) or of a ``data_3d_h36m.npz`` file.

    ``root``: the folder holding ``S1/ ... S11/`` (raw) or the npz file itself (or a folder with
    ``data_3d_h36m.npz``). ``subjects``: names to build (default: every subject present; a named
    subject whose folder is missing is a problem). ``actions``: canonical or alias names, matched
    whole. Unknown file names inside ``D3_Positions`` are problems too (they are never guessed).
    """
    root = Path(root)
    npz = root if root.is_file() else root / "data_3d_h36m.npz"
    seqs: list[SequenceSpec] = []
    problems: dict[str, str] = {}
    if npz.is_file() and (root.is_file() or not any((root / s).is_dir() for s in SUBJECTS)):
        data = read_npz_3d(npz)
        names = list(subjects) if subjects else [s for s in SUBJECTS if s in data] + \
            sorted(s for s in data if s not in SUBJECTS)
        for s in names:
            if s not in data:
                problems[s] = f"{npz}: subject {s} is not in the file (has {', '.join(sorted(data))})"
                continue
            for key in sorted(data[s]):
                try:
                    action, sub = parse_sequence_name(key)
                except InputError as e:
                    problems[f"{s}/{key}"] = f"{npz}: {e.problem}"
                    continue
                if action_selected(action, actions):
                    seqs.append(SequenceSpec(s, action, sub, "npz", str(npz), key, key))
        return Listing(_unique(seqs, problems), problems)
    if not root.is_dir():
        raise InputError(root, "Human3.6M folder (with S1/, S5/, ...) or data_3d_h36m.npz not found")
    present = sorted((d.name for d in root.iterdir() if d.is_dir() and re.fullmatch(r"S\d+", d.name)),
                     key=lambda n: int(n[1:]))
    names = list(subjects) if subjects else present
    if not names:
        raise InputError(root, "no subject folders (S1, S5, ...) here: give the Human3.6M root folder")
    for s in names:
        d3 = root.joinpath(s, *D3_DIR)
        if not (root / s).is_dir():
            problems[s] = f"{root / s}: subject folder not found"
            continue
        if not d3.is_dir():
            problems[s] = f"{d3}: no D3_Positions folder for subject {s}"
            continue
        for f in sorted(d3.glob("*.cdf")):
            try:
                action, sub = parse_sequence_name(f.stem)
            except InputError as e:
                problems[f"{s}/{f.stem}"] = f"{f}: {e.problem}"
                continue
            if action_selected(action, actions):
                seqs.append(SequenceSpec(s, action, sub, "cdf", str(f), "", f.stem))
    return Listing(_unique(seqs, problems), problems)


def _unique(seqs: list[SequenceSpec], problems: dict[str, str]) -> list[SequenceSpec]:
    """Drop sequences whose name collides with an earlier one (``TakingPhoto 1`` and ``Photo 1``
    in the same subject), recording the collision."""
    seen: dict[str, SequenceSpec] = {}
    out = []
    for q in seqs:
        if q.uid in seen:
            problems[q.uid + f" ({q.original_name})"] = (f"{q.path}: {q.original_name!r} and "
                                                         f"{seen[q.uid].original_name!r} both name {q.uid}; "
                                                         "the second is skipped")
            continue
        seen[q.uid] = q
        out.append(q)
    return out


def load_joints(spec: SequenceSpec) -> np.ndarray:
    """The sequence's (N, 32, 3) joints in millimetres, Z-up world."""
    if spec.source == "cdf":
        return read_cdf_pose(spec.path)
    data = read_npz_3d(spec.path)
    try:
        j = np.asarray(data[spec.subject][spec.key], dtype=float)
    except KeyError:
        raise InputError(spec.path, f"no {spec.subject}/{spec.key} in the file") from None
    if j.ndim != 3 or j.shape[1:] != (32, 3):
        raise InputError(spec.path, f"{spec.subject}/{spec.key}: expected (N, 32, 3), got {j.shape}")
    return j * 1000.0
