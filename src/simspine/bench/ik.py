"""``simspine bench ik``: simspine's inverse kinematics next to OpenSim's IK tool run Pose2Sim's way.

Trials: ``--frames`` frames (default 500, 50 Hz) of random smooth motion generated in the prepared
model (every observable free coordinate, lumbar and neck included, within its range), its 37
SpineTrack-37 markers by forward kinematics, written to a TRC for the tool. Three marker sets:
exact (noise-free); with Gaussian noise of ``--noise-mm`` (default 10 mm per axis, about what
triangulated keypoints carry); and the same noise with ``--missing`` (default 20%) of the markers
missing at random per frame (NaN in the TRC). Exact markers flatter an iterative solver (it
converges in a few steps); the noisy trials are the realistic case.

Peer: OpenSim's ``InverseKinematicsTool`` as Pose2Sim runs it: the full
``Model_Pose2Sim_muscles_flex.osim`` (muscles, contact geometry, constraints) with the same 37
markers added, and a setup file made from Pose2Sim's ``IK_Setup_Pose2Sim_Halpe26.xml`` (its
accuracy 1e-5, constraint weight Inf, the L5_S1_Flex_Ext coordinate task of weight 0.1) with the
marker tasks replaced by the SpineTrack-37 markers and weights; TRC in, ``.mot`` out. Timed end to
end (the tool loads the model, reads the TRC, solves, writes the motion).

simspine: each backend is timed end to end the same way (load the prepared model, solve from the
in-memory markers, write the ``.mot``), and its solve alone (frames/s). Backends: ``jacobian``
(default: Gauss-Newton on OpenSim's station Jacobians) and ``opensim`` (OpenSim's
``InverseKinematicsSolver`` in-process), both frame by frame like the tool; one more row adds the
temporal smoothness term at the weight the ``simspine ik`` pipeline uses (what that command
costs). ``batched`` (:mod:`simspine.biomech.ik_batched`, PyTorch) solves the trial together with
``--sequences`` - 1 trials of other random motions (same noise, same missing share) in one batch,
as it is meant to run (many sequences of a subject, or chains of a long one); its frames/s count
every frame of the batch, its accuracy columns are the bench trial's. It runs on one core (torch
threads 1), with ``--batched-threads`` (default: all cores), and alone with the smoothness term
(what ``simspine ik --ik-backend batched`` runs); ``--device cuda`` where a GPU is;
``--skip-batched`` leaves them out. Accuracy: mean per-frame marker RMS and the largest
marker error (against the markers given, noise included), and against the generating motion: the
RMS error of L5_S1 flexion and the mean error of the 37 keypoints (FK of the solution vs the exact
markers).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table

NAME = "ik"
HELP = "IK frames/s and accuracy: simspine (jacobian, opensim solver) vs OpenSim's IK tool run Pose2Sim's way"


def add_arguments(p) -> None:
    from simspine.commands._args import fraction, nonneg_float, nonneg_int, positive_int

    p.add_argument("--frames", type=positive_int, default=500, help="trial length in frames at 50 Hz (default %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random motion and noise seed (default %(default)s)")
    p.add_argument("--noise-mm", type=nonneg_float, default=10.0,
                   help="Gaussian marker noise per axis of the noisy trials, mm (default %(default)s; 0: exact only)")
    p.add_argument("--missing", type=fraction, default=0.2,
                   help="fraction of markers missing at random per frame in the last trial (default %(default)s; "
                        "0: no such trial)")
    p.add_argument("--skip-tool", action="store_true", help="do not run OpenSim's IK tool")
    p.add_argument("--skip-opensim-backend", action="store_true", help="do not run simspine's opensim backend")
    p.add_argument("--skip-batched", action="store_true", help="do not run simspine's batched (PyTorch) backend")
    p.add_argument("--batched-workers", "--batched-threads", dest="batched_workers", type=positive_int, default=None,
                   help="processes of the 'all cores' batched row, one torch thread each, the batch split among "
                        "them (default: every core of the machine; 1: no such row)")
    p.add_argument("--sequences", type=positive_int, default=32,
                   help="trials of this kind the batched backend solves together (the bench trial and others of "
                        "other random motions; its frames/s counts all of them; default %(default)s; 1: alone)")
    p.add_argument("--device", default="cpu",
                   help="torch device of the batched backend (cpu, cuda; default %(default)s)")


@contextlib.contextmanager
def _quiet_c_stdout():
    """Send what C/C++ code writes to stdout (fd 1) to a temporary file while the block runs.

    OpenSim's IK tool prints the model summary (coordinates, forces, ... markers) with
    ``std::cout``, whatever the Logger level, so only the file descriptor can silence it. Logged
    warnings and errors in the captured text are passed on to stderr; on an exception everything
    captured is.
    """
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    failed = False
    with tempfile.TemporaryFile(mode="w+b") as f:
        os.dup2(f.fileno(), 1)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            libc.fflush(None)  # C stdio's buffer (std::cout goes through it) into the file first
            os.dup2(saved, 1)
            os.close(saved)
            f.seek(0)
            text = f.read().decode("utf-8", "replace")
            keep = [ln for ln in text.splitlines()
                    if failed or ln.lstrip().lower().startswith(("[warning]", "[error]", "[critical]"))]
            if keep:
                print("\n".join(keep), file=sys.stderr, flush=True)


def _full_model_with_markers(out: Path) -> Path:
    from simspine.biomech.model import (
        _quiet_opensim,
        generic_model_path,
        replace_markers,
        spinetrack37_markers,
    )

    m = _quiet_opensim().Model(str(generic_model_path()))
    replace_markers(m, spinetrack37_markers())
    m.printToXML(str(out))
    return out


def _pose2sim_setup(model: Path, trc: Path, mot: Path, t0: float, t1: float, out: Path) -> Path:
    """Pose2Sim's Halpe26 IK setup with our model, trial and SpineTrack-37 marker tasks."""
    from simspine.biomech.model import pose2sim_setup_dir
    from simspine.skeletons import spinetrack37, spinetrack37_info

    tree = ET.parse(pose2sim_setup_dir() / "IK_Setup_Pose2Sim_Halpe26.xml")
    tool = tree.getroot().find("InverseKinematicsTool")
    tool.find("model_file").text = str(model)
    tool.find("marker_file").text = str(trc)
    tool.find("output_motion_file").text = str(mot)
    tool.find("results_directory").text = str(out.parent)
    tool.find("time_range").text = f"{t0} {t1}"
    objs = tool.find("IKTaskSet/objects")
    for e in list(objs):
        if e.tag == "IKMarkerTask":
            objs.remove(e)
    w = spinetrack37_info().ik_weights
    for i, n in enumerate(spinetrack37().names):
        e = ET.Element("IKMarkerTask", name=n)
        ET.SubElement(e, "apply").text = "true"
        ET.SubElement(e, "weight").text = str(w[n])
        objs.insert(i, e)
    tree.write(out)
    return out


def _tool_errors(results_dir: Path) -> tuple[float, float]:
    """(mean marker RMS, max marker error) from the tool's ``*_ik_marker_errors.sto``."""
    from simspine.io.mot import read_mot

    f = next(results_dir.glob("*_ik_marker_errors.sto"))
    t = read_mot(f)
    return float(np.mean(t.column("marker_error_RMS"))), float(np.max(t.column("marker_error_max")))


def _trials(traj, noise_mm: float, missing: float, seed: int) -> list[tuple[str, object]]:
    """(label, markers) of the bench's trials: exact, noisy, noisy with missing markers."""
    out = [("exact markers", traj)]
    if noise_mm <= 0:
        return out
    rng = np.random.default_rng(seed + 1)
    noisy = traj.select(traj.names)
    noisy.xyz = noisy.xyz + rng.normal(0.0, noise_mm / 1000.0, noisy.xyz.shape)
    out.append((f"{noise_mm:g} mm noise", noisy))
    if missing > 0:
        holed = noisy.select(noisy.names)
        miss = rng.random(holed.conf.shape) < missing
        holed.xyz[miss] = np.nan
        holed.conf[miss] = 0.0
        out.append((f"{noise_mm:g} mm noise, {missing:.0%} missing", holed))
    return out


def _run_trial(args, markers, truth, traj_true, kin, model_path, td: Path, others=()) -> dict[str, tuple]:
    """Time and score every method on one trial: name -> (wall s, solve frames/s, marker RMS m,
    max marker error m, L5_S1 flexion RMS deg vs truth, keypoint error mm vs truth, frames
    solved). The batched rows solve ``others`` (trials of other motions) with it in one batch;
    their accuracy columns are the bench trial's."""
    import opensim as osim

    from simspine.biomech.fitting import DEFAULT_SMOOTHNESS_50HZ
    from simspine.biomech.fk import CoordinateTable, coordinates_from_mot, run_fk
    from simspine.biomech.ik import make_backend, smoothness_for_rate, write_ik_mot
    from simspine.biomech.model import load_model
    from simspine.io.trc import write_trc
    from simspine.metrics import angle_rmse, mpjpe

    def truth_errors(table: CoordinateTable) -> tuple[float, float]:
        kp, _ = run_fk(kin, table)
        l5 = angle_rmse(np.rad2deg(table.column("L5_S1_Flex_Ext")), np.rad2deg(truth.column("L5_S1_Flex_Ext")))
        return l5, mpjpe(kp.xyz, traj_true.xyz)

    results = {}
    # The tool's setup weighs its L5_S1_Flex_Ext task 0.1; simspine's default is 0.01. The
    # "jacobian, task 0.1" run uses the tool's weight, for a like-for-like accuracy column.
    pose2sim_task = [{"coordinate": "L5_S1_Flex_Ext", "value": 0.0, "weight": 0.1}]
    # "jacobian-smooth": what `simspine ik` runs (the temporal smoothness term at its default).
    runs = [("jacobian", "jacobian", None, 0.0), ("jacobian-0.1", "jacobian", pose2sim_task, 0.0),
            ("jacobian-smooth", "jacobian", None, smoothness_for_rate(DEFAULT_SMOOTHNESS_50HZ, markers.rate))]
    if not args.skip_opensim_backend:
        runs.append(("opensim", "opensim", None, 0.0))
    if not args.skip_batched:
        # The batched PyTorch solver on one core (torch threads 1) and on all cores.
        runs += [("batched-1", "batched", None, 0.0)]
        if (args.batched_workers or os.cpu_count()) > 1:
            runs.append(("batched-all", "batched", None, 0.0))
        runs.append(("batched-smooth", "batched", None, smoothness_for_rate(DEFAULT_SMOOTHNESS_50HZ, markers.rate)))
    for name, backend, tasks, smoothness in runs:
        t0 = time.perf_counter()
        model = load_model(model_path)
        ik = make_backend(backend, smoothness=smoothness)
        frames = markers.n_frames
        if backend == "batched":
            ik.device = args.device
            if name != "batched-smooth":
                ik.chain_frames = None  # one chain per trial: the K trials are the batch
            # The smoothness row is what `simspine ik --ik-backend batched` runs: the trial alone.
            batch = [markers] if name == "batched-smooth" else [markers, *others]
            frames = sum(m.n_frames for m in batch)
            if name == "batched-all":
                res = _solve_batched_parallel(model_path, batch, args.batched_workers or os.cpu_count(), args.device)
            else:
                res = ik.solve_many(model, batch, coordinate_tasks=tasks, progress=False)[0]
        else:
            res = ik.solve(model, markers, coordinate_tasks=tasks, progress=False)
        write_ik_mot(res, td / f"{name}.mot")
        wall = time.perf_counter() - t0
        l5, kp = truth_errors(CoordinateTable(res.time, res.coordinate_names, res.values))
        results[name] = (wall, res.fps, float(np.nanmean(res.rms)), float(np.nanmax(res.max)), l5, kp, frames)
        print(f"  simspine {name}: {wall:.1f} s", flush=True)
    if not args.skip_tool:
        full = _full_model_with_markers(td / "full_model.osim")
        trc = write_trc(td / "trial.trc", markers)
        mot = td / "tool.mot"
        setup = _pose2sim_setup(full, trc, mot, float(markers.time[0]), float(markers.time[-1]), td / "ik_setup.xml")
        osim.Logger.setLevelString("warn")
        t0 = time.perf_counter()
        with _quiet_c_stdout():  # the tool prints the model summary with std::cout
            osim.InverseKinematicsTool(str(setup)).run()
        wall = time.perf_counter() - t0
        rms, mx = _tool_errors(td)
        l5, kp = truth_errors(coordinates_from_mot(mot, kin.coordinates))
        results["tool"] = (wall, float("nan"), rms, mx, l5, kp, markers.n_frames)
        print(f"  OpenSim IK tool (Pose2Sim setup, full model): {wall:.1f} s", flush=True)
    return results


def _batched_part(model_path: str, trials: list, device: str) -> tuple:
    """One worker of the 'all cores' row: its trials in one batch, one torch thread. Returns the
    first trial's result and the worker's solve seconds."""
    from simspine.biomech.ik_batched import BatchedIK
    from simspine.biomech.model import load_model

    out = BatchedIK(threads=1, device=device).solve_many(load_model(model_path), trials, progress=False)
    return out[0], sum(r.seconds for r in out)


def _solve_batched_parallel(model_path: str, batch: list, workers: int, device: str):
    """``batch`` split among ``workers`` processes (trial i to worker i mod workers, one torch
    thread each: torch's own threads stalled one another on this shared machine, 8x slower than
    one thread); the bench trial's result, its ``seconds`` such that ``fps`` is the batch's frames
    over the slowest worker's solve time. (Processes, as build-dataset's Dask workers run.)"""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(workers, len(batch)))
    parts = [batch[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        outs = list(ex.map(_batched_part, [str(model_path)] * workers, parts, [device] * workers))
    res = outs[0][0]
    res.meta["workers"] = workers
    # solve frames/s of the row: the batch's frames over the slowest worker's solve time
    res.seconds = len(res.time) * max(sec for _, sec in outs) / sum(m.n_frames for m in batch)
    return res


LABELS = {"jacobian": "simspine jacobian (default)", "jacobian-0.1": "simspine jacobian, task weight 0.1",
          "jacobian-smooth": "simspine jacobian + smoothness (simspine ik)",
          "opensim": "simspine opensim-solver", "batched-1": "simspine batched, {k} trials, 1 core",
          "batched-all": "simspine batched, {k} trials, {t} processes",
          "batched-smooth": "simspine batched + smoothness, alone, 1 core",
          "tool": "OpenSim IK tool, Pose2Sim way"}


def _check_device(name: str) -> None:
    """A torch device the batched rows can use, or a one-line error (before any work)."""
    import torch

    from simspine.errors import InputError

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(None, f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"--device {name}: torch sees no CUDA GPU on this machine (use --device cpu)")


def run(args) -> int:
    from simspine.biomech.fk import Kinematics, run_fk
    from simspine.biomech.model import prepare_model
    from simspine.biomech.motion import random_motion

    if not args.skip_batched:
        _check_device(args.device)
    model_path = prepare_model()
    kin = Kinematics(str(model_path))
    truth = random_motion(kin, args.frames, rate=50.0, seed=args.seed)
    traj, _ = run_fk(kin, truth)
    print(f"simspine bench ik: {args.frames} frames, 37 markers, random motion in the model (seed {args.seed})",
          flush=True)
    tables = []
    # The batched backend's batch partners: the same kinds of trials of other random motions.
    extra = []
    if not args.skip_batched and args.sequences > 1:
        for k in range(1, args.sequences):
            traj_k, _ = run_fk(kin, random_motion(kin, args.frames, rate=50.0, seed=args.seed + 1000 * k))
            extra.append([m for _, m in _trials(traj_k, args.noise_mm, args.missing, args.seed + 1000 * k)])
    for i, (label, markers) in enumerate(_trials(traj, args.noise_mm, args.missing, args.seed)):
        print(f"trial: {label}", flush=True)
        with tempfile.TemporaryDirectory() as td:
            results = _run_trial(args, markers, truth, traj, kin, model_path, Path(td), [e[i] for e in extra])
        tool = results.get("tool")
        ref_fps = tool[6] / tool[0] if tool else float("nan")
        rows = []
        for key, (wall, fps_solve, rms, mx, l5, kp, frames) in results.items():
            rows.append([LABELS[key].format(k=args.sequences, t=args.batched_workers or os.cpu_count()), f"{frames / wall:.1f}",
                         "-" if np.isnan(fps_solve) else f"{fps_solve:.1f}",
                         f"{frames / wall / ref_fps:.1f}x" if np.isfinite(ref_fps) else "-",
                         f"{rms * 1000:.3f}", f"{mx * 1000:.2f}", f"{l5:.3f}", f"{kp:.2f}"])
        tables.append((label, rows))
    for label, rows in tables:
        print(f"\nTrial: {label}")
        print(format_table(["method", "frames/s (end to end)", "frames/s (solve)", "speed-up vs tool",
                            "marker RMS mm", "max err mm", "L5_S1 flex RMS deg", "keypoints mm"], rows))
    args.figures = {"headers": ["method", "frames/s (end to end)", "frames/s (solve)", "speed-up vs tool", "marker RMS mm",
                                "max err mm", "L5_S1 flex RMS deg", "keypoints mm"],
                    "trials": {label: rows for label, rows in tables}}  # --json (simspine.commands.bench)
    if not args.skip_batched:
        print(f"\nBatched rows: the bench trial solved together with {args.sequences - 1} trials of other random "
              "motions (same noise and missing markers), as a batch job would (a subject's sequences, or chains of "
              "a long one: `--ik-backend batched` cuts each trial into chains of 25 frames); frames/s counts all "
              "frames of the batch, the accuracy columns are the bench trial's (device: " + str(args.device) + ").")
    print("\nEnd to end = load model + solve + write .mot (the tool also reads the TRC). Same trial, same "
          "markers and weights. Marker RMS and max error: against the markers given (noise included); L5_S1 "
          "flexion RMS and keypoint error (mean over the 37 keypoints, FK of the solution): against the "
          "generating motion. L5_S1_Flex_Ext task (pulls lumbar flexion to 0): weight 0.1 in Pose2Sim's setup "
          "and the 'task weight 0.1' row, 0.01 in simspine's default (see simspine.biomech.ik).")
    return 0
