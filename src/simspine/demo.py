"""``simspine demo``: the whole pipeline on a small synthetic session, checked against its truth.

Generates a session (a few seconds, Human3.6M's four cameras, simulated detector), runs
``annotate`` on it, prints the closed-loop errors (spine MPJPE per region, per-level lumbar
angle RMSE, neck angle RMSE) and the speed of every stage, and writes an HTML report
(``report.html``) plus the numbers as JSON (``closed_loop.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from simspine.bench.table import format_table
from simspine.fileio import write_text_atomic
from simspine.synth.evaluate import LUMBAR_DOFS, LUMBAR_LEVELS, NECK_COORDS, REGIONS
from simspine.synth.loop import LoopResult, closed_loop
from simspine.synth.session import SynthConfig


def tables(res: LoopResult) -> list[tuple[str, list[str], list[list]]]:
    """(title, headers, rows) of the demo's tables."""
    e = res.errors
    reg = [[r, e.triangulated_region_mm.get(r, float("nan")), e.filtered_region_mm.get(r, float("nan")),
            e.region_mm[r]] for r in REGIONS]
    lum = [[lvl] + [e.lumbar_rmse_deg[lvl][d] for d in LUMBAR_DOFS] for lvl in LUMBAR_LEVELS]
    neck = [[n, e.neck_rmse_deg[n]] for n in NECK_COORDS]
    speed = [[name, secs, fps] for name, secs, fps in res.stage_rates()]
    return [
        (f"3D keypoint error, MPJPE (mm) over {e.n_frames} frames", ["region", "triangulated", "filtered", "final (model)"], reg),
        ("Lumbar intervertebral angles, RMSE (deg)", ["level", "flexion/ext.", "lateral bending", "axial rotation"], lum),
        ("Neck angles, RMSE (deg)", ["coordinate", "RMSE"], neck),
        ("Speed", ["stage", "seconds", "frames/s"], speed),
    ]


def print_tables(res: LoopResult) -> None:
    for title, headers, rows in tables(res):
        print(f"\n{title}")
        print(format_table(headers, rows, floatfmt=".2f"))


def write_report(res: LoopResult, path: str | os.PathLike) -> Path:
    """The demo's HTML report (see :mod:`simspine.report`)."""
    from simspine import report

    tr, rec, cfg = res.session.truth, res.recovered, res.session.config
    t_true = tr.keypoints.time
    truth_deg, pred_deg = {}, {}
    for n in ("L5_S1_Flex_Ext", "L5_S1_Lat_Bending", "L5_S1_axial_rotation",
              "L1_T12_Flex_Ext", "L1_T12_Lat_Bending", "L1_T12_axial_rotation", *NECK_COORDS):
        truth_deg[n] = np.rad2deg(tr.coordinate(n))
        if n in rec.coordinate_names:
            pred_deg[n] = np.rad2deg(rec.coordinates[:, rec.coordinate_names.index(n)])
    # recovered keypoints on the truth's frames (NaN where the pipeline has no frame)
    from simspine.synth.evaluate import match_frames

    ia, ib = match_frames(t_true, rec.time)
    pred_kp = np.full_like(tr.keypoints.xyz, np.nan)
    pred_kp[ia] = rec.keypoints[ib]
    subj = tr.subject
    intro = (f"<p class='note'>Synthetic session: action <b>{cfg.action}</b>, {cfg.seconds:g} s at {cfg.fps:g} Hz, "
             f"{len(res.session.rig.cameras)} cameras ({res.session.rig.name}); subject {subj.height_m:.2f} m, "
             f"marker-placement jitter {1000 * cfg.jitter_m:.0f} mm RMS, proportions ±{100 * cfg.proportion_spread:.0f}%; "
             f"detector: {cfg.detector.noise_px:g} px noise, {100 * cfg.detector.outlier_rate:g}% outliers, "
             f"occlusion {'on' if cfg.detector.occlusion else 'off'}, seed {cfg.seed}. Errors compare the pipeline's "
             "output with the generator's ground truth; all 3D data in OpenSim's ground frame (Y up, metres).</p>")
    sections = [intro] + [report.table_html(*t) for t in tables(res)]
    sections += [report.keypoint_error_figure(res.errors.per_keypoint_mm),
                 report.angle_traces_figure(t_true, truth_deg, pred_deg, rec.time),
                 report.skeleton_figure(t_true, tr.keypoints.xyz, pred_kp)]
    return report.write_html(path, "simspine demo: closed-loop check on a synthetic session", sections)


def run_demo(out: str | os.PathLike, config: SynthConfig | None = None, report: bool = True,
             **annotate_options) -> LoopResult:
    """Synthesise, annotate, evaluate; write ``report.html`` and ``closed_loop.json`` into ``out``."""
    cfg = config or SynthConfig(action="pickup", seconds=4.0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    annotate_options.setdefault("log", lambda msg: print(f"  {msg}", flush=True))
    res = closed_loop(cfg, out, **annotate_options)
    summary = {"config": cfg.as_dict(), "errors": res.errors.as_dict(),
               "stages": [{"stage": s, "seconds": t, "frames_per_s": f} for s, t, f in res.stage_rates()],
               "frames": "3D errors in OpenSim ground frame (Y up); angles in degrees", "regions": list(REGIONS)}
    write_text_atomic(out / "closed_loop.json", json.dumps(summary, indent=1, default=float))
    if report:
        write_report(res, out / "report.html")
    return res
