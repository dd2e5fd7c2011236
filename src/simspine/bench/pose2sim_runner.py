"""Run Pose2Sim's triangulation (``Pose2Sim.triangulation.triangulate_all``) on a simspine session.

Pose2Sim reads a project folder, so :func:`run_pose2sim_triangulation` writes a temporary one from
the :class:`~simspine.io.session.Session2D` both tools are compared on:

* ``calibration/Calib.toml`` — the session's cameras (:func:`simspine.calibration.write_calibration_toml`),
  in the session's camera order;
* ``pose/camNN_json/frame_NNNNNN.json`` — OpenPose JSON in Pose2Sim's ``HALPE_26`` layout, copied
  by keypoint name (case-insensitive) from the session, one file per frame of the session with the
  frame's *position* in the session as its number (Pose2Sim identifies frame ``f`` by the last number
  of the file name and counts frames from 0), one person per file (the one simspine's loader chose),
  no person where a camera saw nothing; missing points are written as ``0, 0, 0`` as Pose2Sim does;
* ``Config.toml`` (Pose2Sim looks for it to locate the calibration folder; its settings are passed
  as a dict).

Pose2Sim writes its TRC in a Y-up frame (its ``zup2yup``, the same permutation as
:func:`simspine.frames.zup_to_yup`), metres, time = frame / frame rate, trimmed to the frames it
triangulated. The TRC is read back with :func:`simspine.io.trc.read_trc` and put back on the
session's frames (NaN where Pose2Sim gave nothing).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.trajectories import Trajectories

#: Pose2Sim settings used by the benchmark (its Config.toml defaults, except where noted).
DEFAULT_SETTINGS = {
    "project": {"multi_person": False, "frame_range": "all"},
    "pose": {"pose_model": "HALPE_26"},
    "triangulation": {
        "reproj_error_threshold_triangulation": 15,  # px, Pose2Sim's default = simspine's
        "likelihood_threshold_triangulation": 0.3,   # Pose2Sim's default = simspine's
        "min_cameras_for_triangulation": 2,
        "handle_LR_swap": False,                     # Pose2Sim's default ("not implemented yet")
        "undistort_points": False,                   # Pose2Sim's default
        "interpolation": "none",                     # default 'linear': off, to compare raw triangulations
        "interp_if_gap_smaller_than": 20,
        "fill_large_gaps_with": "nan",               # default 'last_value': off, likewise
        "remove_incomplete_frames": False,
        "sections_to_keep": "all",
        "min_chunk_size": 10,
        "show_interp_indices": False,
        "make_c3d": False,
        "predict_displacement": False,
        "match_by": "keypoints",
        "max_distance_m": 1.0,
        "max_unseen_frames": 100,
    },
}

#: What Pose2Sim's Config.toml ships for the gap handling (``gap_filling=True``).
POSE2SIM_GAP_FILLING = {"interpolation": "linear", "fill_large_gaps_with": "last_value"}


@dataclass
class Pose2SimResult:
    """Pose2Sim's triangulation put back on the session's frames.

    Attributes:
        markers: (T, M, 3) metres, Y up (as Pose2Sim writes), the HALPE_26 points Pose2Sim
            triangulates, in its TRC order; NaN where it gave no point (and, without gap filling,
            exactly zero is also read as missing).
        settings: the config dict passed to ``triangulate_all`` (project_dir left out).
        trc_text_head: first lines of the TRC it wrote (for the record).
        log: what Pose2Sim logged and printed (INFO and above).
    """

    markers: Trajectories
    settings: dict
    trc_text_head: str = ""
    log: str = ""
    meta: dict = field(default_factory=dict)


def halpe26_points() -> list[tuple[str, int]]:
    """(name, id) of the points of Pose2Sim's ``HALPE_26`` tree, in the order its TRC lists them."""
    from anytree import RenderTree
    from Pose2Sim.skeletons import HALPE_26

    return [(node.name, int(node.id)) for _, _, node in RenderTree(HALPE_26) if node.id is not None]


def settings_for(gap_filling: bool = False, **triangulation) -> dict:
    """A deep copy of :data:`DEFAULT_SETTINGS`, with Pose2Sim's own gap filling if asked and any
    ``[triangulation]`` key overridden."""
    s = json.loads(json.dumps(DEFAULT_SETTINGS))
    if gap_filling:
        s["triangulation"].update(POSE2SIM_GAP_FILLING)
    s["triangulation"].update(triangulation)
    return s


def _halpe_map(session_names: list[str]) -> dict[int, int]:
    """HALPE_26 id -> session keypoint index, matched by name (case-insensitive)."""
    idx = {n.lower(): i for i, n in enumerate(session_names)}
    return {hid: idx[name.lower()] for name, hid in halpe26_points() if name.lower() in idx}


def write_pose2sim_project(session, folder: str | os.PathLike, settings: dict) -> Path:
    """Write ``session`` as a Pose2Sim project in ``folder`` (layout in the module docstring)."""
    from simspine.calibration import write_calibration_toml

    folder = Path(folder)
    (folder / "calibration").mkdir(parents=True, exist_ok=True)
    C, T = session.n_cameras, session.n_frames
    # Pose2Sim pairs calibration cameras and pose folders by order only: name both by position.
    cams = []
    for i, cam in enumerate(session.cameras):
        c = type(cam)(f"cam{i + 1:02d}", cam.size, cam.K, cam.dist, cam.R, cam.t, cam.dist_model)
        cams.append(c)
    write_calibration_toml(folder / "calibration" / "Calib.toml", cams, fit_distortion=True)
    fps = float(session.fps)
    (folder / "Config.toml").write_text(
        "# written by simspine bench real; the settings are passed to Pose2Sim as a dict\n"
        f"[project]\nframe_rate = {fps!r}\n")
    mapping = _halpe_map(session.keypoint_names)
    if not mapping:
        raise InputError(None, f"no HALPE_26 point among the session's keypoints ({session.skeleton})")
    thr = 0.0  # write every reported point; Pose2Sim applies its own likelihood threshold
    for c in range(C):
        d = folder / "pose" / f"cam{c + 1:02d}_json"
        d.mkdir(parents=True, exist_ok=True)
        for f in range(T):
            flat = np.zeros(26 * 3)
            any_pt = False
            for hid, k in mapping.items():
                uv = session.keypoints[c, f, k]
                p = float(session.conf[c, f, k])
                if np.all(np.isfinite(uv)) and np.isfinite(p) and p > thr:
                    flat[3 * hid:3 * hid + 3] = (uv[0], uv[1], p)
                    any_pt = True
            people = [{"person_id": [-1], "pose_keypoints_2d": flat.tolist()}] if any_pt else []
            (d / f"frame_{f:06d}.json").write_text(json.dumps({"version": 1.3, "people": people}))
    return folder


@contextlib.contextmanager
def _quiet(log: io.StringIO):
    """Route Pose2Sim's logging, prints and tqdm bar into ``log``; headless matplotlib/Qt."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MPLBACKEND", "Agg")
    root = logging.getLogger()
    handler = logging.StreamHandler(log)
    handler.setLevel(logging.INFO)
    old_level, old_handlers = root.level, root.handlers[:]
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        root.handlers = old_handlers
        root.setLevel(old_level)


def _import_triangulate_all():
    """Pose2Sim's ``triangulate_all``, imported quietly (its import tries a Qt backend, logs a warning
    when there is none, and sets numpy's print options, which are restored here)."""
    log = io.StringIO()
    printopts = np.get_printoptions()
    try:
        with _quiet(log):
            from Pose2Sim.triangulation import triangulate_all
    except ImportError as e:  # pragma: no cover - Pose2Sim is a dependency
        raise InputError("Pose2Sim", f"not installed ({e})") from None
    finally:
        np.set_printoptions(**printopts)
    return triangulate_all


def read_pose2sim_trc(trc: str | os.PathLike, n_frames: int, fps: float, time0: float = 0.0,
                      zeros_are_missing: bool = True) -> Trajectories:
    """Pose2Sim's TRC put on frames ``0 .. n_frames-1`` (frame = round(time * fps)); Y up, metres."""
    from simspine.io.trc import read_trc

    tr = read_trc(trc)
    xyz = np.full((n_frames, len(tr.names), 3), np.nan)
    frames = np.rint(tr.time * fps).astype(int)
    ok = (frames >= 0) & (frames < n_frames)
    if not np.allclose(tr.time[ok] * fps, frames[ok], atol=1e-3):
        raise InputError(trc, "Pose2Sim's TRC times are not on the session's frames")
    xyz[frames[ok]] = tr.xyz[ok]
    if zeros_are_missing:
        xyz[np.all(xyz == 0, axis=-1)] = np.nan
    time = time0 + np.arange(n_frames) / fps
    return Trajectories(time, tr.names, xyz, frame="opensim-ground (Y up), as Pose2Sim writes",
                        meta={"source": str(trc)})


def run_pose2sim_triangulation(session, settings: dict | None = None, workdir: str | os.PathLike | None = None,
                               keep: bool = False) -> Pose2SimResult:
    """Triangulate ``session`` with Pose2Sim (settings: :data:`DEFAULT_SETTINGS` unless given).

    Args:
        session: a :class:`~simspine.io.session.Session2D` (any layout holding HALPE_26 names,
            e.g. SpineTrack-37).
        settings: Pose2Sim config dict (``project_dir`` is set here).
        workdir: where to make the temporary project (a fresh folder inside it); default: the
            system's temporary directory.
        keep: keep the project folder (its path is in ``meta['project']``).

    Raises:
        InputError: Pose2Sim is not installed, or it triangulated nothing (its message is kept).
    """
    triangulate_all = _import_triangulate_all()
    settings = json.loads(json.dumps(settings or DEFAULT_SETTINGS))
    tmp = tempfile.mkdtemp(prefix="simspine_p2s_", dir=workdir)
    project = Path(tmp) / "project"  # its parent holds no Config.toml: Pose2Sim uses this folder
    try:
        write_pose2sim_project(session, project, settings)
        cfg = json.loads(json.dumps(settings))
        cfg.setdefault("project", {})["project_dir"] = str(project)
        cfg["project"]["frame_rate"] = float(session.fps)
        log = io.StringIO()
        t0 = time.perf_counter()
        try:
            with _quiet(log):
                triangulate_all(cfg)
        except Exception as e:
            raise InputError("Pose2Sim", f"triangulation failed: {type(e).__name__}: {e}") from None
        elapsed = time.perf_counter() - t0
        trcs = sorted((project / "pose-3d").glob("*.trc"))
        if not trcs:
            raise InputError("Pose2Sim", "triangulation wrote no TRC file")
        time0 = float(session.timestamps[0]) if session.n_frames else 0.0
        markers = read_pose2sim_trc(trcs[0], session.n_frames, float(session.fps), time0)
        head = "\n".join(trcs[0].read_text().splitlines()[:3])
        return Pose2SimResult(markers, settings, head, log.getvalue(),
                              {"project": str(project) if keep else None, "trc": trcs[0].name,
                               "triangulate_all_s": elapsed})
    finally:
        if not keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
