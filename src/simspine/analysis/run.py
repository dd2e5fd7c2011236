"""``simspine analyze``: Cobb angles, ROM, tables, figures and an HTML report for sequences.

Writes into the output folder (each file atomically):

* ``cobb_per_frame.csv``: sequence, subject, action, time (s), LLA/TKA by the geometric and the
  keypoint method (deg; empty where a method does not apply);
* ``cobb_by_action.csv/.md``, ``cobb_by_subject.csv/.md``: Tab. B2-style mean ± sd (geometric
  method where available, else keypoints), and ``cobb_keypoints_by_action.csv/.md`` when both exist;
* ``rom_per_sequence.csv``, ``rom_by_action.csv/.md``, ``rom_by_subject.csv``: per-level ROM;
* ``fig3_cobb_rom.png/.svg`` (Fig. 3) and ``fig4_neck_rom.png/.svg`` (Fig. 4);
* ``report.html`` (the same figures and tables, offline) and ``summary.json`` (means beside the
  reference ranges, methods' difference, outliers removed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from simspine.analysis import figures, tables
from simspine.analysis.cobb import endplate_geometry, landmark_offsets
from simspine.analysis.rom import rom_reference
from simspine.fileio import ensure_out_dir, write_text_atomic


def _fmt(v) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:.4f}"


def per_frame_csv(seqs) -> str:
    lines = ["sequence,subject,action,time_s,lla_geometric_deg,tka_geometric_deg,lla_keypoints_deg,tka_keypoints_deg"]
    for s in seqs:
        for t in range(s.n_frames):
            g, k = s.geometric, s.keypoints
            lines.append(",".join([s.name, s.subject, s.action, f"{s.time[t]:.4f}",
                                   _fmt(g.lla[t] if g else None), _fmt(g.tka[t] if g else None),
                                   _fmt(k.lla[t] if k else None), _fmt(k.tka[t] if k else None)]))
    return "\n".join(lines) + "\n"


def method_difference(seqs) -> dict | None:
    """Keypoint minus geometric LLA/TKA over frames where both exist: mean, RMS, max |.| (deg)."""
    d_l, d_t = [], []
    for s in seqs:
        if s.geometric is not None and s.keypoints is not None:
            d_l.append(s.keypoints.lla - s.geometric.lla)
            d_t.append(s.keypoints.tka - s.geometric.tka)
    if not d_l:
        return None
    out = {}
    for key, d in (("lla", np.concatenate(d_l)), ("tka", np.concatenate(d_t))):
        d = d[np.isfinite(d)]
        out[key] = {"mean": float(d.mean()), "rms": float(np.sqrt(np.mean(d ** 2))), "max_abs": float(np.abs(d).max()),
                    "frames": int(d.size)} if d.size else None
    return out


def analyze(seqs, out_dir: str | os.PathLike, report: bool = True, figures_png: bool = True) -> dict:
    """Write the analysis of ``seqs`` (:class:`simspine.analysis.inputs.SequenceData`) to ``out_dir``;
    returns the summary (also written as ``summary.json``)."""
    out = ensure_out_dir(out_dir)
    ref = rom_reference()["cobb"]
    bands = {"lla": ref["paper_reported"]["lla"], "tka": ref["paper_reported"]["tka"]}
    method = "geometric" if any(s.geometric is not None for s in seqs) else "keypoints"
    write_text_atomic(out / "cobb_per_frame.csv", per_frame_csv(seqs))
    written = ["cobb_per_frame.csv"]
    cobb = {}
    for by in ("action", "subject"):
        rows = tables.cobb_rows(seqs, by, method)
        cobb[by] = rows
        write_text_atomic(out / f"cobb_by_{by}.csv", tables.to_csv(rows))
        write_text_atomic(out / f"cobb_by_{by}.md", tables.cobb_markdown(rows, by))
        written += [f"cobb_by_{by}.csv", f"cobb_by_{by}.md"]
    if method == "geometric" and any(s.keypoints is not None for s in seqs):
        rows = tables.cobb_rows(seqs, "action", "keypoints")
        cobb["action_keypoints"] = rows
        write_text_atomic(out / "cobb_keypoints_by_action.csv", tables.to_csv(rows))
        write_text_atomic(out / "cobb_keypoints_by_action.md", tables.cobb_markdown(rows, "action"))
        written += ["cobb_keypoints_by_action.csv", "cobb_keypoints_by_action.md"]
    per_seq = tables.rom_per_sequence(seqs)
    rom_rows = {}
    if per_seq:
        write_text_atomic(out / "rom_per_sequence.csv", tables.to_csv(per_seq))
        for by in ("action", "subject"):
            rom_rows[by] = tables.rom_rows(seqs, by)
            write_text_atomic(out / f"rom_by_{by}.csv", tables.to_csv(rom_rows[by]))
        write_text_atomic(out / "rom_by_action.md", tables.rom_markdown(rom_rows["action"]))
        written += ["rom_per_sequence.csv", "rom_by_action.csv", "rom_by_subject.csv", "rom_by_action.md"]
    if figures_png:
        figures.save_figure(figures.figure3_matplotlib(seqs, method, bands), out / "fig3_cobb_rom")
        written += ["fig3_cobb_rom.png", "fig3_cobb_rom.svg"]
        if per_seq:
            figures.save_figure(figures.figure4_matplotlib(seqs), out / "fig4_neck_rom")
            written += ["fig4_neck_rom.png", "fig4_neck_rom.svg"]
    avg = next((r for r in cobb["action"] if r["group"] == "Avg"), None)
    summary = {
        "sequences": [{"name": s.name, "subject": s.subject, "action": s.action, "frames": s.n_frames,
                       "source": s.source, "methods": [m for m in ("geometric", "keypoints") if getattr(s, m)]}
                      for s in seqs],
        "cobb_method": method,
        "lla_mean_deg": avg and avg["lla_mean"], "tka_mean_deg": avg and avg["tka_mean"],
        "cobb_by_action": cobb["action"], "cobb_by_subject": cobb["subject"],
        "method_difference_deg": method_difference(seqs),
        "model_neutral_deg": dict(zip(("lla", "tka"), endplate_geometry().neutral_deg(), strict=True)),
        "landmark_offsets_deg": dict(zip(("lla", "tka"), landmark_offsets(), strict=True)),
        "reference": ref,
        "outlier_rule": "Tukey far-out fences (Q1 - 3 IQR, Q3 + 3 IQR) per group and quantity",
        "files": written,
    }
    if report:
        write_report(out / "report.html", seqs, summary, rom_rows.get("action", []), method, bands)
        written.append("report.html")
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return summary


def write_report(path: Path, seqs, summary: dict, rom_rows: list[dict], method: str, bands: dict) -> Path:
    """The HTML report: Tab. B2-style tables, Fig. 3 and Fig. 4 (plotly, offline)."""
    from simspine.report import table_html, write_html

    ref = summary["reference"]
    n_frames = sum(s.n_frames for s in seqs)
    intro = (f"<p class='note'>{len(seqs)} sequence(s), {n_frames} frames. Cobb angles by the {method} method "
             f"(degrees; see <code>simspine.analysis.cobb</code>); outliers: {summary['outlier_rule']}. "
             f"Paper (Sec. 3.2): mean lordosis {ref['paper_reported']['lla'][0]}–{ref['paper_reported']['lla'][1]}°, "
             f"kyphosis {ref['paper_reported']['tka'][0]}–{ref['paper_reported']['tka'][1]}° per action; commonly "
             f"quoted clinical normal ranges LLA {ref['normative_clinical']['lla'][0]}–"
             f"{ref['normative_clinical']['lla'][1]}°, TKA {ref['normative_clinical']['tka'][0]}–"
             f"{ref['normative_clinical']['tka'][1]}°.</p>")
    sections: list = [intro]
    for by in ("action", "subject"):
        rows = summary[f"cobb_by_{by}"]
        sections.append(table_html(f"LLA and TKA per {by} (mean ± sd, °)", [by, "LLA mean", "LLA sd", "TKA mean",
                                                                          "TKA sd", "frames", "removed"],
                                   [[r["group"], r["lla_mean"], r["lla_sd"], r["tka_mean"], r["tka_sd"], r["frames"],
                                     r["removed"]] for r in rows]))
    diff = summary.get("method_difference_deg")
    if diff:
        sections.append(table_html("Keypoint minus geometric method (°)", ["angle", "mean", "RMS", "max |.|", "frames"],
                                   [[k.upper(), v["mean"], v["rms"], v["max_abs"], v["frames"]]
                                    for k, v in diff.items() if v]))
    v, r = figures.figure3_plotly(seqs, method, bands)
    sections += [v]
    if rom_rows:
        sections += [r, figures.figure4_plotly(seqs),
                     table_html("ROM per action and level (mean ± sd over sequences, °, total excursion)",
                                ["action", "level", "motion", "mean", "sd", "n", "ref lo", "ref hi"],
                                [[x["group"], x["level"], x["motion"], x["mean"], x["sd"], x["n"], x["ref_lo"],
                                  x["ref_hi"]] for x in rom_rows])]
    return write_html(path, "simspine analyze: spine plausibility", sections)
