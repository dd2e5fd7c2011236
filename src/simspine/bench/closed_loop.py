"""``simspine bench closed-loop``: pipeline accuracy on synthetic sessions versus 2D noise and outliers.

Sweeps Gaussian 2D noise (0, 2, 5, 10 px) x gross-outlier rate (0, 5, 20%) on the same subject and
motion (only the detector changes), runs ``annotate`` on each session and prints spine MPJPE
after triangulation and after the model (with their ratio), lumbar and neck angle RMSE and time.
Resumable: each cell's numbers are kept in ``WORKDIR/<cell>/closed_loop.json`` and reused when the
configuration is the same. ``--ik-backend`` and ``--ik-smoothness`` (0: frame-by-frame IK) change
the IK; cells run with other than the defaults get their own folders, so both can share a workdir.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from simspine.bench.table import format_table
from simspine.errors import SimspineError

NAME = "closed-loop"
HELP = "closed-loop accuracy of the whole pipeline vs 2D noise x outlier rate (synthetic sessions)"
NOISES_PX = (0.0, 2.0, 5.0, 10.0)
OUTLIER_RATES = (0.0, 0.05, 0.2)
#: IK backends with the temporal smoothness term (:data:`simspine.biomech.ik.SMOOTHING_BACKENDS`)
SMOOTHING_IK_BACKENDS = ("jacobian", "batched")


def add_arguments(p) -> None:
    from simspine.commands._args import fraction, nonneg_float, nonneg_int, positive_float
    from simspine.synth.motion import ACTIONS

    p.add_argument("--workdir", default="simspine_closed_loop", help="where sessions and results go (default: %(default)s)")
    p.add_argument("--action", default="pickup", choices=ACTIONS, help="action (default: %(default)s)")
    p.add_argument("--seconds", type=positive_float, default=4.0, help="session length in s (default: %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--noise", type=nonneg_float, nargs="+", default=list(NOISES_PX), help="2D noise levels, px")
    p.add_argument("--outliers", type=fraction, nargs="+", default=list(OUTLIER_RATES), help="outlier rates (0-1)")
    p.add_argument("--no-jitter", action="store_true", help="no marker-placement jitter in the generator")
    p.add_argument("--ik-backend", default="jacobian", choices=SMOOTHING_IK_BACKENDS,
                   help="IK backend of annotate (default: %(default)s)")
    p.add_argument("--ik-smoothness", type=nonneg_float, default=None,
                   help="weight of the IK's temporal smoothness term at 50 Hz; 0 for frame-by-frame IK "
                        "(default: the pipeline's, 0.1)")


def _plain(d: dict) -> dict:
    """``d`` as it reads back from JSON (tuples as lists, numpy floats as floats)."""
    return json.loads(json.dumps(d, default=float))


def sweep(workdir, action="pickup", seconds=4.0, seed=0, noises=NOISES_PX, outliers=OUTLIER_RATES,
          jitter_m=0.01, progress=True, ik_backend="jacobian", smoothness=None) -> list[dict]:
    """Run (or reuse) every cell; returns one dict per cell with the config and errors.

    ``ik_backend`` and ``smoothness`` (the IK's temporal term at 50 Hz; None: the pipeline's
    default) are recorded in each cell's ``"ik"``; cells with other than the defaults live in
    folders named after them (``..._ik-jacobian-smooth0``).

    A finished cell (its ``closed_loop.json`` holds the same config) is reused; an interrupted one
    resumes: its session is kept (:func:`simspine.synth.session.synthesize`) and ``annotate``
    skips the stages it had finished.
    """
    from simspine.biomech.fitting import DEFAULT_SMOOTHNESS_50HZ
    from simspine.fileio import write_text_atomic
    from simspine.synth.detector import DetectorConfig
    from simspine.synth.loop import closed_loop
    from simspine.synth.session import SynthConfig

    base = SynthConfig(action=action, seconds=seconds, seed=seed, jitter_m=jitter_m, detector=DetectorConfig())
    smooth = DEFAULT_SMOOTHNESS_50HZ if smoothness is None else float(smoothness)
    ik = {"backend": ik_backend, "smoothness": smooth}
    default_ik = {"backend": "jacobian", "smoothness": DEFAULT_SMOOTHNESS_50HZ}
    suffix = "" if ik == default_ik else f"_ik-{ik_backend}-smooth{smooth:g}"
    out = []
    cells = [(n, o) for n in noises for o in outliers]
    for i, (n, o) in enumerate(cells):
        cfg = replace(base, detector=replace(base.detector, noise_px=float(n), outlier_rate=float(o)))
        cell = Path(workdir) / f"noise{n:g}px_outliers{100 * o:g}pct{suffix}"
        done = cell / "closed_loop.json"
        tag = f"[{i + 1}/{len(cells)}] {cell.name}"
        if done.is_file():
            d = json.loads(done.read_text())
            # cells written before the IK options existed ran the defaults
            if d.get("config") == _plain(cfg.as_dict()) and d.get("ik", default_ik) == ik:
                out.append(d)
                if progress:
                    print(f"{tag}: reused", flush=True)
                continue
        t0 = time.perf_counter()
        try:
            res = closed_loop(cfg, cell, log=lambda *_: None, ik_backend=ik_backend,
                              ik_options={"smoothness": smooth})
            d = {"config": cfg.as_dict(), "ik": ik, "errors": res.errors.as_dict(), "seconds": time.perf_counter() - t0,
                 "frames": res.errors.n_frames}
            line = (f"spine {res.errors.spine_mm:.1f} mm, L5/S1 flexion {res.errors.lumbar_flexion_rmse_deg:.2f} "
                    f"deg, {d['seconds']:.0f} s")
        except SimspineError as e:  # the pipeline refused this session: a result too, keep going
            d = {"config": cfg.as_dict(), "ik": ik, "failed": str(e), "seconds": time.perf_counter() - t0}
            line = f"pipeline refused: {e}"
        write_text_atomic(done, json.dumps(d, indent=1, default=float))
        out.append(_plain(d))
        if progress:
            print(f"{tag}: {line}", flush=True)
    return out


def table_rows(results: list[dict]) -> list[list]:
    rows = []
    for d in results:
        det = d["config"]["detector"]
        if "failed" in d:
            rows.append([f"{det['noise_px']:g}", f"{100 * det['outlier_rate']:g}"] + ["-"] * (len(HEADERS) - 4)
                        + [d["seconds"], "pipeline refused: " + d["failed"]])
            continue
        e = d["errors"]
        tri = e["triangulated_region_mm"].get("spine", float("nan"))
        fin = e["region_mm"]["spine"]
        lum = e["lumbar_rmse_deg"]["L5_S1"]
        neck = sum(e["neck_rmse_deg"].values()) / len(e["neck_rmse_deg"])
        rows.append([f"{det['noise_px']:g}", f"{100 * det['outlier_rate']:g}", tri, fin, tri / fin if fin else float("nan"),
                     e["region_mm"]["lumbar"], e["region_mm"]["thoracic"], e["region_mm"]["cervical"],
                     lum["Flex_Ext"], lum["Lat_Bending"], lum["axial_rotation"], neck, d["seconds"], ""])
    return rows


HEADERS = ["noise px", "outliers %", "spine tri mm", "spine model mm", "tri/model", "lumbar mm", "thoracic mm",
           "cervical mm", "L5S1 flex deg", "L5S1 lat deg", "L5S1 axial deg", "neck deg", "seconds", "note"]


def run(args) -> int:
    from simspine.biomech.fitting import DEFAULT_SMOOTHNESS_50HZ
    from simspine.fileio import ensure_out_dir

    ensure_out_dir(args.workdir)
    results = sweep(args.workdir, args.action, args.seconds, args.seed, args.noise, args.outliers,
                    0.0 if args.no_jitter else 0.01, ik_backend=args.ik_backend, smoothness=args.ik_smoothness)
    smooth = DEFAULT_SMOOTHNESS_50HZ if args.ik_smoothness is None else args.ik_smoothness
    print(f"\nclosed loop: {args.action}, {args.seconds:g} s at 50 Hz, Human3.6M cameras, seed {args.seed}, "
          f"marker jitter {'0' if args.no_jitter else '10'} mm RMS, {args.ik_backend} IK with smoothness "
          f"{smooth:g}; MPJPE over the spine keypoints "
          "(triangulated vs final model output), RMSE of L5/S1 angles (other lumbar levels scale with them)")
    print(format_table(HEADERS, table_rows(results), floatfmt=".2f"))
    args.figures = {"headers": HEADERS, "rows": table_rows(results)}  # --json (simspine.commands.bench)
    return 0
