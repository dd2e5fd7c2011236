"""Tables like the paper's Tab. B2 (LLA/TKA mean ± sd per action and per subject) and per-level
ROM tables, as rows plus CSV and Markdown renderings.

Tab. B2's "Avg" row: the mean of the group means and the mean of the group SDs (so every group
counts once, whatever its number of frames).
"""

from __future__ import annotations

import csv
import io

import numpy as np

from simspine.analysis.aggregate import group_values, mean_sd
from simspine.analysis.rom import MOTIONS, all_levels, rom_reference, sequence_rom


def _pm(m: float, s: float) -> str:
    if not np.isfinite(m):
        return "—"
    return f"{m:.2f} ± {s:.2f}" if np.isfinite(s) else f"{m:.2f}"


def cobb_rows(seqs, by: str = "action", method: str = "geometric") -> list[dict]:
    """One dict per group (``by``: 'action' or 'subject'; first-seen order) then an 'Avg' row:
    ``group, lla_mean, lla_sd, tka_mean, tka_sd, frames, removed`` (deg; outliers removed per
    :mod:`simspine.analysis.aggregate`). ``method``: 'geometric' or 'keypoints' (a sequence
    lacking it is skipped)."""
    use = [(getattr(s, by), getattr(s, method)) for s in seqs if getattr(s, method) is not None]
    if not use:
        return []
    labels = [u[0] for u in use]
    lla = group_values(labels, [u[1].lla for u in use])
    tka = group_values(labels, [u[1].tka for u in use])
    rows = []
    for g in lla:
        a, b = mean_sd(lla[g]), mean_sd(tka[g])
        rows.append({"group": g, "lla_mean": a["mean"], "lla_sd": a["sd"], "tka_mean": b["mean"], "tka_sd": b["sd"],
                     "frames": a["n"], "removed": a["removed"] + b["removed"]})
    avg = {"group": "Avg"}
    for k in ("lla_mean", "lla_sd", "tka_mean", "tka_sd"):
        v = np.array([r[k] for r in rows], float)
        avg[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    avg["frames"] = sum(r["frames"] for r in rows)
    avg["removed"] = sum(r["removed"] for r in rows)
    return rows + [avg]


def rom_per_sequence(seqs) -> list[dict]:
    """Per-sequence ROM (deg): dicts ``name, subject, action, level, motion, rom`` (sequences
    without coordinates are skipped)."""
    out = []
    for s in seqs:
        if not s.angles_deg:
            continue
        r = sequence_rom(s.angles_deg)
        for lv in all_levels():
            for m in MOTIONS:
                out.append({"name": s.name, "subject": s.subject, "action": s.action, "level": lv, "motion": m,
                            "rom": r[lv][m]})
    return out


def reference_band(level: str, motion: str) -> tuple[float, float, float] | None:
    """(lo, hi, representative) total ROM (deg) of the literature band for a level and motion
    (one-side source values doubled), None when there is none."""
    ref = rom_reference()
    if level == "neck":
        v = ref["neck"]["total"].get(motion)
        return tuple(float(x) for x in v) if v else None
    v = ref["rom_levels"]["levels"].get(level, {}).get(motion)
    if v is None:
        return None
    k = 2.0 / ref["rom_levels"]["sides"][motion]
    return float(v[0]) * k, float(v[1]) * k, float(v[2]) * k


def rom_rows(seqs, by: str = "action") -> list[dict]:
    """ROM mean ± sd over sequences per group, level and motion, with the reference band:
    dicts ``group, level, motion, mean, sd, n, removed, ref_lo, ref_hi, ref_rep``."""
    per = rom_per_sequence(seqs)
    groups = list(dict.fromkeys(p[by] for p in per))
    rows = []
    for g in groups:
        for lv in all_levels():
            for m in MOTIONS:
                v = np.array([p["rom"] for p in per if p[by] == g and p["level"] == lv and p["motion"] == m])
                st = mean_sd(v)
                band = reference_band(lv, m) or (np.nan, np.nan, np.nan)
                rows.append({"group": g, "level": lv, "motion": m, "mean": st["mean"], "sd": st["sd"], "n": st["n"],
                             "removed": st["removed"], "ref_lo": band[0], "ref_hi": band[1], "ref_rep": band[2]})
    return rows


def to_csv(rows: list[dict]) -> str:
    """CSV text of dict rows (columns of the first row; floats with 4 decimals)."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = list(rows[0])
    w.writerow(cols)
    for r in rows:
        w.writerow([f"{r[c]:.4f}" if isinstance(r[c], float) else r[c] for c in cols])
    return buf.getvalue()


def markdown(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table (cells as given, str())."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def cobb_markdown(rows: list[dict], by: str) -> str:
    """Tab. B2-style Markdown: group, LLA (°) mean ± sd, TKA (°) mean ± sd, frames."""
    return markdown([by.capitalize(), "LLA (°)", "TKA (°)", "frames"],
                    [[r["group"], _pm(r["lla_mean"], r["lla_sd"]), _pm(r["tka_mean"], r["tka_sd"]), r["frames"]]
                     for r in rows])


def rom_markdown(rows: list[dict]) -> str:
    """Per-level ROM Markdown: group, level, then mean ± sd (reference lo–hi) per motion."""
    keyed = {(r["group"], r["level"], r["motion"]): r for r in rows}
    body = []
    for g, lv in dict.fromkeys((r["group"], r["level"]) for r in rows):
        cells = [g, lv]
        for m in MOTIONS:
            r = keyed[(g, lv, m)]
            ref = f" ({r['ref_lo']:.0f}–{r['ref_hi']:.0f})" if np.isfinite(r["ref_lo"]) else ""
            cells.append(_pm(r["mean"], r["sd"]) + ref)
        body.append(cells)
    return markdown(["group", "level", "flexion/extension (°)", "lateral bending (°)", "axial rotation (°)"], body)
