"""``simspine analyze INPUT... --out DIR``: Cobb angles, per-level ROM, tables, figures, report."""

from __future__ import annotations

from simspine.commands._args import positive_int

NAME = "analyze"
HELP = "plausibility analyses: Cobb angles (LLA/TKA), per-level ROM, Tab. B2-like tables, Fig. 3/4-like figures"
DESCRIPTION = (
    "Reads motion files (.mot/.sto of the spine model), 37-keypoint TRC files, rotations.csv, annotate/ik/fk "
    "output folders or a dataset store (HDF5) and writes into DIR: lumbar lordosis (L1-S1) and thoracic "
    "kyphosis (T3-T12) per frame by Cobb's method (from the model's vertebral geometry where coordinates or "
    "rotations are available, from the sagittal keypoint curve otherwise; both when both are), per-level "
    "range of motion (L5-S1 ... T12-L1, neck), mean +- sd per action and per subject with conservative "
    "outlier removal (CSV and Markdown), figures as PNG and SVG, report.html (offline) and summary.json. "
    "Subject/action come from the store, --subject/--action, names like S1_Walking, or a synthetic "
    "session's record."
)


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="motion file, keypoint TRC, rotations.csv, annotate/ik/fk output folder or dataset store (.h5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--subject", default=None, help="subject label for every input (default: inferred)")
    p.add_argument("--action", default=None, help="action label for every input (default: inferred)")
    p.add_argument("--stride", type=positive_int, default=1, help="use every N-th frame (default 1)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")


def run(args) -> int:
    import time

    from simspine.analysis.inputs import load_input
    from simspine.analysis.run import analyze
    from simspine.fileio import ensure_out_dir

    out = ensure_out_dir(args.out)
    t0 = time.perf_counter()
    seqs = []
    for inp in args.inputs:
        seqs += load_input(inp, args.subject, args.action, args.stride)
    s = analyze(seqs, out, report=not args.no_report)
    print(f"simspine analyze: {len(seqs)} sequence(s), {sum(q.n_frames for q in seqs)} frames, "
          f"Cobb method: {s['cobb_method']} ({time.perf_counter() - t0:.1f} s)")
    ref = s["reference"]["paper_reported"]
    if s["lla_mean_deg"] is not None:
        print(f"  mean LLA {s['lla_mean_deg']:.1f} deg (paper per-action means {ref['lla'][0]}-{ref['lla'][1]}), "
              f"mean TKA {s['tka_mean_deg']:.1f} deg (paper {ref['tka'][0]}-{ref['tka'][1]})")
    d = s["method_difference_deg"]
    if d and d["lla"]:
        print(f"  keypoint - geometric: LLA mean {d['lla']['mean']:+.2f} (RMS {d['lla']['rms']:.2f}), "
              f"TKA mean {d['tka']['mean']:+.2f} (RMS {d['tka']['rms']:.2f}) deg")
    print(f"  -> {out}/ (cobb_by_action.md, rom_by_action.md, fig3_cobb_rom.png, fig4_neck_rom.png, report.html)")
    return 0
