"""``simspine dataset info|validate|export FILE``: look at, check and convert a SimSpine dataset file."""

from __future__ import annotations

NAME = "dataset"
HELP = "inspect ('info'), check ('validate') or convert ('export') a SimSpine dataset file"
DESCRIPTION = (
    "Works on a file written by 'simspine build-dataset' or the official SimSpine release (same HDF5 layout). "
    "'info' lists subjects, sequences, frames and what the file holds; 'validate' checks layout, shapes, "
    "finite values, rigid-body distances and 2D/calibration agreement (exit 1 on a problem); 'export' writes "
    "the release's folder layout (cameras/, models/, positions/, kinematics/), COCO keypoints JSON per split "
    "or the lifting npz per split."
)


def add_arguments(p) -> None:
    from simspine.dataset.export import FORMATS

    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    i = sub.add_parser("info", help="subjects, sequences, frames, contents and provenance")
    i.add_argument("file", metavar="FILE")
    i.set_defaults(_dataset_run=run_info)
    v = sub.add_parser("validate", help="check the file (exit 1 when a problem is found)")
    v.add_argument("file", metavar="FILE")
    v.set_defaults(_dataset_run=run_validate)
    e = sub.add_parser("export", help="release folders, COCO keypoints JSON or lifting npz")
    e.add_argument("file", metavar="FILE")
    e.add_argument("--format", required=True, choices=FORMATS)
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.set_defaults(_dataset_run=run_export)


def run(args) -> int:
    return int(args._dataset_run(args) or 0)


def run_info(args) -> int:
    from simspine.dataset.h36m import split_of
    from simspine.dataset.store import Store

    with Store(args.file) as st:
        total = 0
        print(f"{args.file}: {'simspine build' if st.is_simspine_build else 'SimSpine release layout'}; "
              f"{len(st.kinematic_axes)} kinematic axes, {len(st.markers_names)} markers")
        for s in st.subjects():
            seqs = st.sequences(s)
            frames = sum(st.f[f"{s}/{q}/markers"].shape[0] for q in seqs)
            total += frames
            ncam = len(st.f[f"{s}/calibration/names"]) if "calibration" in st.f[s] else 0
            print(f"  {s} ({split_of(s)}): {len(seqs)} sequences, {frames} frames, {ncam} cameras")
        extras = set()
        for s in st.subjects():
            for q in st.sequences(s)[:1]:
                extras |= set(st.f[f"{s}/{q}"]) - {"markers", "kinematics"}
        print(f"  total {total} frames ({total / 50.0:.1f} s at 50 Hz)")
        if extras:
            print(f"  extra arrays: {', '.join(sorted(extras))}")
        prov = st.provenance
        if prov:
            print(f"  built with: {prov.get('versions', {})}")
            if prov.get("ik_backend"):
                print(f"  IK backend: {prov['ik_backend']}")
            failed = prov.get("summary", {}).get("failed") or {}
            if failed:
                print(f"  {len(failed)} sequences failed at build time: {', '.join(sorted(failed))}")
    return 0


def run_validate(args) -> int:
    from simspine.dataset.validate import validate_store

    problems, notes = validate_store(args.file)
    for n in notes:
        print(f"  {n}")
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"{args.file}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def run_export(args) -> int:
    from simspine.dataset.export import export
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(args.out)
    files = export(args.file, args.format, args.out)
    print(f"{len(files)} files written to {args.out}")
    return 0
