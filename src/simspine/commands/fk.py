"""``simspine fk MOTION.mot --out DIR``: 37 keypoints and spine rotations from any coordinates file."""

from __future__ import annotations

NAME = "fk"
HELP = "forward kinematics: coordinates (.mot/.sto) -> 37 SpineTrack-37 keypoints (TRC) and spine rotations"
DESCRIPTION = (
    "Reads an OpenSim coordinates file (.mot/.sto, degrees or radians as its header says), poses the model "
    "(--model, default: the prepared generic spine model) frame by frame and writes DIR/keypoints37.trc "
    "(OpenSim ground frame, Y up, metres) and DIR/rotations.csv/.npz (intervertebral coordinates and "
    "vertebral-body orientations relative to the pelvis, intrinsic Z-X-Y, degrees). Coordinates missing "
    "from the file keep their default values. Warns when the values look like degrees read as radians (or "
    "radians labelled as degrees)."
)


def add_arguments(p) -> None:
    p.add_argument("motion", help="coordinates file (.mot or .sto)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="model (.osim) with the SpineTrack-37 markers, e.g. DIR/model_scaled.osim "
                                                 "from 'simspine ik' (default: the prepared generic model)")


def run(args) -> int:
    import time
    from pathlib import Path

    from simspine.biomech.fitting import write_fk_outputs
    from simspine.biomech.fk import Kinematics, coordinates_from_mot
    from simspine.biomech.plausibility import check_motion_file, coordinate_bounds
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(args.out)
    t0 = time.perf_counter()
    kin = Kinematics(args.model)
    table = coordinates_from_mot(args.motion, kin.coordinates)
    for w in check_motion_file(args.motion, coordinate_bounds(kin.model)):  # degrees read as radians
        print(f"simspine fk: warning: {w}", flush=True)
    out = Path(args.out)
    write_fk_outputs(kin, table, out, progress=True)
    print(f"simspine fk: {len(table.time)} frames -> {out}/keypoints37.trc, rotations.csv, rotations.npz "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0
