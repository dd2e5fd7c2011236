"""``simspine bench build``: the dataset build's frames/s per core and the full dataset's projected time,
next to OpenSim's IK tool run per sequence, serially, on the same sequences.

Sequences: a miniature Human3.6M tree written by :func:`simspine.dataset.synthetic.write_mini_h36m`
(``--subjects`` x ``--actions``, ``--frames`` each at 50 Hz, motion generated on the model; with the
2D spine detections per camera unless ``--no-spine-2d``, so the build triangulates, filters and
merges them as it would Human3.6M with ``--spine-2d``).

* **simspine, end to end**: :func:`simspine.dataset.build.build_dataset` on a fresh work folder with
  ``--workers`` Dask workers (default: one per core) and the IK backend ``--ik-backend`` (default
  ``jacobian``, as ``build-dataset``'s; ``batched`` measured 10.5 vs 12.7 frames/s per core in the
  sequence tasks here, chains of 25 frames, one torch thread per worker): cluster start, per-subject scaling, every
  sequence (read, merge, IK, FK, projections) and the HDF5 store, timed by the wall clock.
  frames/s per core = frames / wall / workers. On a tree this small the fixed costs (cluster start,
  scaling each subject, the store) weigh far more than on Human3.6M, so this is a pessimistic rate.
* **simspine, sequence tasks**: frames / the summed seconds of the sequence tasks (each task's own
  time, ``.done.json``): the per-core rate that dominates a build of 2.14 M frames, where the fixed
  costs are a few minutes.
* **peer: the serial per-step approach**: OpenSim's ``InverseKinematicsTool`` run Pose2Sim's way
  (full ``Model_Pose2Sim_muscles_flex.osim`` with the SpineTrack-37 markers, Pose2Sim's Halpe26 setup
  file; :mod:`simspine.bench.ik`) once per sequence, one after the other, on the sequence's true 37
  keypoints written as a TRC; timed per sequence as the tool runs (load model, read TRC, solve,
  write ``.mot``). This is the IK step alone: the serial approach's triangulation, filtering,
  scaling and FK steps would add to its time, so the comparison flatters the peer. It runs on one
  core (the published scripts run one shell step at a time), so its projected time is the same on
  any machine.

Projection: hours = ``--total-frames`` (default 2,140,000, SimSpine's size, paper Tab. 1) /
(frames/s per core x cores) / 3600, for this machine's cores and a ``--node-cores`` (default 64)
node, assuming the per-core rate holds (one single-threaded worker per core, sequences independent).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table

NAME = "build"
HELP = ("dataset build frames/s per core on Dask and projected time for SimSpine's 2.14 M frames, vs OpenSim's IK "
        "tool per sequence, serially")
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else HELP
SIMSPINE_FRAMES = 2_140_000


def add_arguments(p) -> None:
    from simspine.commands._args import nonneg_int, positive_int

    p.add_argument("--subjects", nargs="+", default=["S1"], metavar="S", help="subjects of the tree (default: S1)")
    p.add_argument("--actions", nargs="+", default=["Walking 1", "SittingDown"], metavar="A",
                   help="sequences per subject (default: 'Walking 1' SittingDown)")
    p.add_argument("--frames", type=positive_int, default=250, help="frames per sequence at 50 Hz (default %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="motion seed (default %(default)s)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local Dask workers for the build (default: one per core)")
    p.add_argument("--no-spine-2d", action="store_true", help="build from the Human3.6M joints only (no 2D spine)")
    p.add_argument("--ik-backend", default="jacobian", metavar="NAME",
                   help="IK backend of the build: jacobian (default, as build-dataset's), opensim, batched")
    p.add_argument("--total-frames", type=positive_int, default=SIMSPINE_FRAMES,
                   help="frames of the full dataset to project to (default %(default)s)")
    p.add_argument("--node-cores", type=positive_int, default=64, help="cores of the node projected to (default 64)")
    p.add_argument("--skip-tool", action="store_true", help="do not run OpenSim's IK tool")
    p.add_argument("--out", default=None, help="keep the tree, store and tool files in this folder (default: temporary)")


# ---- arithmetic ------------------------------------------------------------------------------------
def projected_hours(total_frames: float, frames_per_s_per_core: float, cores: int) -> float:
    """Hours to process ``total_frames`` at ``frames_per_s_per_core`` on each of ``cores`` cores."""
    if not frames_per_s_per_core > 0 or cores < 1:
        return float("nan")
    return total_frames / (frames_per_s_per_core * cores) / 3600.0


def projection_rows(measured: list[dict], total_frames: int, cores_here: int, node_cores: int) -> list[list]:
    """Table rows from ``measured`` ({label, frames, seconds, cores, serial}): frames, wall s, cores,
    frames/s, frames/s per core, projected hours here and on the node (a serial method: one core)."""
    rows = []
    for m in measured:
        fps = m["frames"] / m["seconds"] if m["seconds"] > 0 else float("nan")
        per_core = fps / m["cores"]
        here = 1 if m.get("serial") else cores_here
        node = 1 if m.get("serial") else node_cores
        rows.append([m["label"], int(m["frames"]), f"{m['seconds']:.1f}", m["cores"], f"{fps:.1f}", f"{per_core:.2f}",
                     f"{projected_hours(total_frames, per_core, here):.1f}",
                     f"{projected_hours(total_frames, per_core, node):.1f}"])
    return rows


# ---- measurements ----------------------------------------------------------------------------------
def _build(tree: Path, spine_2d, work: Path, workers: int | None, backend: str = "jacobian") -> dict:
    import json

    from simspine.dataset.build import build_dataset
    from simspine.dataset.sequence import SequenceOptions

    t0 = time.perf_counter()
    summary = build_dataset(tree, work / "simspine.h5", spine_2d=spine_2d, workers=workers, progress=False,
                            log=lambda s: None, options=SequenceOptions(ik_backend=backend))
    wall = time.perf_counter() - t0
    task_s = [json.loads(f.read_text())["seconds"] for f in (work / "simspine.h5.work").glob("*/*.done.json")]
    return {"summary": summary, "wall": wall, "task_seconds": float(sum(task_s))}


def _tool_per_sequence(truth: dict, td: Path) -> tuple[int, float]:
    """OpenSim's IK tool, Pose2Sim's way, once per sequence, serially: (frames, summed seconds)."""
    import opensim as osim

    from simspine.bench.ik import _full_model_with_markers, _pose2sim_setup, _quiet_c_stdout
    from simspine.io.trc import write_trc
    from simspine.skeletons import spinetrack37
    from simspine.trajectories import Trajectories

    names = list(spinetrack37().names)
    model = _full_model_with_markers(td / "full_model.osim")
    osim.Logger.setLevelString("warn")
    frames, seconds = 0, 0.0
    for uid, t in truth.items():
        d = td / uid.replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        kp = t["keypoints"]
        traj = Trajectories(np.arange(len(kp)) / 50.0, names, kp)
        trc = write_trc(d / "markers.trc", traj)
        setup = _pose2sim_setup(model, trc, d / "ik.mot", float(traj.time[0]), float(traj.time[-1]), d / "ik_setup.xml")
        t0 = time.perf_counter()
        with _quiet_c_stdout():
            osim.InverseKinematicsTool(str(setup)).run()
        seconds += time.perf_counter() - t0
        frames += len(kp)
        print(f"  OpenSim IK tool, {uid}: {len(kp)} frames in {time.perf_counter() - t0:.1f} s", flush=True)
    return frames, seconds


def run(args) -> int:
    from simspine.dataset.synthetic import write_mini_h36m

    cores_here = os.cpu_count() or 1
    td = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="simspine-bench-build-"))
    try:
        tree, det = td / "h36m", (None if args.no_spine_2d else td / "spine2d")
        for d in (tree, det, td / "build", td / "tool"):
            if d is not None and d.exists():
                shutil.rmtree(d)  # a fresh build every run: nothing is resumed
        print(f"simspine bench build: {len(args.subjects)} subject(s) x {len(args.actions)} sequence(s) x "
              f"{args.frames} frames (miniature Human3.6M tree, seed {args.seed}"
              f"{'' if det is None else ', with 2D spine detections'})", flush=True)
        truth = write_mini_h36m(tree, subjects=tuple(args.subjects), actions=tuple(args.actions), frames=args.frames,
                                seed=args.seed, spine_2d=det)
        (td / "build").mkdir(parents=True)
        backend = args.ik_backend
        b = _build(tree, det, td / "build", args.workers, backend)
        s = b["summary"]
        if s.failed:
            print(s.text())
            return 1
        print(f"  simspine build-dataset (IK backend {backend}): {s.frames} frames in {b['wall']:.1f} s on "
              f"{s.workers} workers", flush=True)
        measured = [{"label": f"simspine build-dataset, end to end (Dask, {backend} IK)", "frames": s.frames,
                     "seconds": b["wall"], "cores": s.workers},
                    {"label": f"simspine, sequence tasks only ({backend} IK)", "frames": s.frames,
                     "seconds": b["task_seconds"], "cores": 1}]
        if not args.skip_tool:
            (td / "tool").mkdir(parents=True)
            frames, secs = _tool_per_sequence(truth, td / "tool")
            measured.append({"label": "OpenSim IK tool per sequence, serial (IK only)", "frames": frames,
                             "seconds": secs, "cores": 1, "serial": True})
        rows = projection_rows(measured, args.total_frames, cores_here, args.node_cores)
        args.figures = {"measured": measured, "rows": rows}  # --json (simspine.commands.bench)
        print()
        print(format_table(["method", "frames", "wall s", "cores", "frames/s", "frames/s per core",
                            f"h for {args.total_frames / 1e6:.2f} M frames here ({cores_here} cores)",
                            f"h on a {args.node_cores}-core node"], rows))
        if not args.skip_tool:
            pc = [m["frames"] / m["seconds"] / m["cores"] for m in measured]
            print(f"\nper core: simspine end to end {pc[0] / pc[2]:.1f}x the tool's frames/s (sequence tasks "
                  f"{pc[1] / pc[2]:.1f}x); full dataset on a {args.node_cores}-core node: the serial tool "
                  f"{projected_hours(args.total_frames, pc[2], 1):.0f} h vs simspine "
                  f"{projected_hours(args.total_frames, pc[0], args.node_cores):.1f} h "
                  f"({pc[0] * args.node_cores / pc[2]:.0f}x)")
        print("\nEnd to end: cluster start, per-subject scaling, all sequences (2D spine triangulated and merged, IK, "
              "FK, projections) and the store; on a tree this small the fixed costs dominate, so its rate is "
              "pessimistic. Sequence tasks: frames / summed task seconds, the rate that dominates the full dataset. "
              "The tool row is IK alone (its other steps would add), run serially as the published scripts do, so "
              "it projects to the same hours on any machine. Projection: frames / (frames/s per core x cores).")
        return 0
    finally:
        if not args.out:
            shutil.rmtree(td, ignore_errors=True)
