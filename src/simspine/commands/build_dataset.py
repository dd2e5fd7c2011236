"""``simspine build-dataset --h36m PATH --out FILE``: the SimSpine dataset from Human3.6M, on Dask."""

from __future__ import annotations

NAME = "build-dataset"
HELP = "build the SimSpine dataset (HDF5, official release layout) from Human3.6M on a Dask cluster"
DESCRIPTION = (
    "Reads Human3.6M (the raw tree with S*/MyPoseFeatures/D3_Positions/*.cdf, or data_3d_h36m.npz), maps "
    "its limb joints into the model frame (mm -> m, Z up -> Y up), merges them with pseudo-3D spine keypoints "
    "triangulated from 2D detections when --spine-2d is given (OpenPose JSON per camera: "
    "DIR/<subject>/<sequence>/pose/<camera>_json/, or a data_2d_*.npz-style file), scales the model once per "
    "subject, runs IK and FK per "
    "sequence, projects the 37 keypoints into each camera (visibility, person boxes) and writes one HDF5 "
    "file in the official SimSpine release's layout plus our extra arrays. Sequences run as Dask tasks on a "
    "local cluster (one worker per core) or on --scheduler ADDRESS. Resumable: finished sequences in the "
    "work folder (FILE.work/) are skipped; a failing sequence is reported and the others go on."
)


def add_arguments(p) -> None:
    from simspine.commands._args import positive_float, positive_int

    p.add_argument("--h36m", required=True, metavar="PATH",
                   help="Human3.6M root folder (S1/, S5/, ...) or data_3d_h36m.npz")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="dataset file to write")
    p.add_argument("--spine-2d", default=None, metavar="DIR|FILE.npz",
                   help="2D SpineTrack-37 detections: OpenPose JSON per sequence and camera "
                        "(DIR/<subject>/<sequence>/pose/<camera>_json/) or one data_2d_*.npz-style file "
                        "(positions_2d: subject -> action -> [per camera (N, 37, 2|3)])")
    p.add_argument("--subjects", nargs="+", default=None, metavar="S", help="subjects to build (default: all found)")
    p.add_argument("--actions", nargs="+", default=None, metavar="A",
                   help="actions to build, whole names (Sitting does not select SittingDown; default: all)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=positive_int, default=None,
                   help="local Dask workers, one single-threaded process each (default: one per core)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler (e.g. tcp://node:8786; workers must share the file system)")
    p.add_argument("--work-dir", default=None, help="folder for per-sequence results (default: FILE.work/)")
    p.add_argument("--mass", type=positive_float, default=70.0, help="subject mass in kg (default: %(default)s)")
    p.add_argument("--scaling-refine", type=positive_int, default=4,
                   help="refinement rounds of each subject's scaling (default: %(default)s)")
    p.add_argument("--ik-backend", default="jacobian", metavar="NAME",
                   help="IK backend of simspine.biomech.ik.make_backend: jacobian (default), opensim or batched "
                        "(PyTorch); recorded in the store's provenance")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from simspine.dataset.build import build_dataset
    from simspine.dataset.sequence import SequenceOptions
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(Path(args.out).resolve().parent)
    opts = SequenceOptions(mass=args.mass, scaling_refine=args.scaling_refine, ik_backend=args.ik_backend)
    summary = build_dataset(args.h36m, args.out, spine_2d=args.spine_2d, subjects=args.subjects,
                            actions=args.actions, workers=args.workers, scheduler=args.scheduler,
                            work_dir=args.work_dir, options=opts, progress=not args.no_progress)
    print(summary.text())
    return 1 if summary.failed else 0
