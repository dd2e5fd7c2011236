"""``simspine bench ik``: simspine's inverse kinematics next to OpenSim's IK tool run Pose2Sim's way.

Trial: ``--frames`` frames (default 500, 50 Hz) of random smooth motion generated in the prepared
model (every observable free coordinate, lumbar and neck included, within its range), its 37
SpineTrack-37 markers by forward kinematics (exact, no noise), written to a TRC for the tool.

Peer: OpenSim's ``InverseKinematicsTool`` as Pose2Sim runs it: the full
``Model_Pose2Sim_muscles_flex.osim`` (muscles, contact geometry, constraints) with the same 37
markers added, and a setup file made from Pose2Sim's ``IK_Setup_Pose2Sim_Halpe26.xml`` (its
accuracy 1e-5, constraint weight Inf, the L5_S1_Flex_Ext coordinate task of weight 0.1) with the
marker tasks replaced by the SpineTrack-37 markers and weights; TRC in, ``.mot`` out. Timed end to
end (the tool loads the model, reads the TRC, solves, writes the motion).

simspine: each backend is timed end to end the same way (load the prepared model, solve from the
in-memory markers, write the ``.mot``), and its solve alone (frames/s). Backends: ``jacobian``
(default: Gauss-Newton on OpenSim's station Jacobians) and ``opensim`` (OpenSim's
``InverseKinematicsSolver`` in-process), both frame by frame like the tool (no temporal
smoothness term, which the ``simspine ik`` pipeline adds). Accuracy: mean per-frame marker RMS and the largest
marker error, and the RMS error of L5_S1 flexion against the generating motion.
"""

from __future__ import annotations

import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table

NAME = "ik"
HELP = "IK frames/s and accuracy: simspine (jacobian, opensim solver) vs OpenSim's IK tool run Pose2Sim's way"


def add_arguments(p) -> None:
    p.add_argument("--frames", type=int, default=500, help="trial length in frames at 50 Hz (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random motion seed (default %(default)s)")
    p.add_argument("--skip-tool", action="store_true", help="do not run OpenSim's IK tool")
    p.add_argument("--skip-opensim-backend", action="store_true", help="do not run simspine's opensim backend")


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


def run(args) -> int:
    import opensim as osim

    from simspine.biomech.fk import Kinematics, run_fk
    from simspine.biomech.ik import make_backend, write_ik_mot
    from simspine.biomech.model import load_model, prepare_model
    from simspine.biomech.motion import random_motion
    from simspine.io.mot import read_mot
    from simspine.io.trc import write_trc

    model_path = prepare_model()
    kin = Kinematics(str(model_path))
    truth = random_motion(kin, args.frames, rate=50.0, seed=args.seed)
    traj, _ = run_fk(kin, truth)
    l5_true = truth.column("L5_S1_Flex_Ext")
    print(f"simspine bench ik: {args.frames} frames, 37 markers, random motion in the model (seed {args.seed})",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        results = {}
        # The tool's setup weighs its L5_S1_Flex_Ext task 0.1; simspine's default is 0.01. The
        # "jacobian, task 0.1" run uses the tool's weight, for a like-for-like accuracy column.
        pose2sim_task = [{"coordinate": "L5_S1_Flex_Ext", "value": 0.0, "weight": 0.1}]
        runs = [("jacobian", "jacobian", None), ("jacobian-0.1", "jacobian", pose2sim_task)]
        if not args.skip_opensim_backend:
            runs.append(("opensim", "opensim", None))
        for name, backend, tasks in runs:
            t0 = time.perf_counter()
            model = load_model(model_path)
            res = make_backend(backend).solve(model, traj, coordinate_tasks=tasks, progress=False)
            write_ik_mot(res, td / f"{name}.mot")
            wall = time.perf_counter() - t0
            l5 = np.rad2deg(np.sqrt(np.mean((res.column("L5_S1_Flex_Ext") - l5_true) ** 2)))
            results[name] = (wall, res.fps, float(np.mean(res.rms)), float(np.max(res.max)), l5)
            print(f"  simspine {name}: {wall:.1f} s", flush=True)
        if not args.skip_tool:
            full = _full_model_with_markers(td / "full_model.osim")
            trc = write_trc(td / "trial.trc", traj)
            mot = td / "tool.mot"
            setup = _pose2sim_setup(full, trc, mot, float(traj.time[0]), float(traj.time[-1]), td / "ik_setup.xml")
            osim.Logger.setLevelString("warn")
            t0 = time.perf_counter()
            osim.InverseKinematicsTool(str(setup)).run()
            wall = time.perf_counter() - t0
            rms, mx = _tool_errors(td)
            table = read_mot(mot)
            l5 = np.rad2deg(np.sqrt(np.mean((np.deg2rad(table.column("L5_S1_Flex_Ext")) - l5_true) ** 2)))
            results["tool"] = (wall, float("nan"), rms, mx, l5)
            print(f"  OpenSim IK tool (Pose2Sim setup, full model): {wall:.1f} s", flush=True)
    ref = results.get("tool", (float("nan"),))[0]
    labels = {"jacobian": "simspine jacobian (default)", "jacobian-0.1": "simspine jacobian, task weight 0.1",
              "opensim": "simspine opensim-solver",
              "tool": "OpenSim IK tool, Pose2Sim way"}
    for key, (wall, fps_solve, rms, mx, l5) in results.items():
        fps = args.frames / wall
        rows.append([labels[key], f"{fps:.1f}", "-" if np.isnan(fps_solve) else f"{fps_solve:.1f}",
                     f"{ref / wall:.1f}x" if np.isfinite(ref) else "-",
                     f"{rms * 1000:.3f}", f"{mx * 1000:.2f}", f"{l5:.3f}"])
    print()
    print(format_table(["method", "frames/s (end to end)", "frames/s (solve)", "speed-up vs tool",
                        "marker RMS mm", "max err mm", "L5_S1 flex RMS deg"], rows))
    print("\nEnd to end = load model + solve + write .mot (the tool also reads the TRC). Same trial, same "
          "markers and weights. L5_S1_Flex_Ext task (pulls lumbar flexion to 0): weight 0.1 in Pose2Sim's setup "
          "and the 'task weight 0.1' row, 0.01 in simspine's default (see simspine.biomech.ik).")
    return 0
