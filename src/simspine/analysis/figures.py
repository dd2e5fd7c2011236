"""Figures like the paper's Fig. 3 (violins of LLA and TKA per action; ROM per level against the
literature bands) and Fig. 4 (neck ROM per action): matplotlib (Agg backend) for PNG and SVG,
plotly for the self-contained HTML report (:mod:`simspine.report`).

Angles in degrees; outliers removed as in :mod:`simspine.analysis.aggregate` (the violins show
the kept frames). ROM bands are the totals of ``rom_reference.json`` (one-side values doubled).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from simspine.analysis.aggregate import filtered, group_values
from simspine.analysis.rom import LEVELS, MOTIONS
from simspine.analysis.tables import reference_band, rom_per_sequence
from simspine.fileio import write_bytes_atomic

MOTION_TITLES = {"flexion_extension": "flexion/extension", "lateral_bending": "lateral bending",
                 "axial_rotation": "axial rotation"}
LUMBAR_LEVELS = [lv for lv, _ in LEVELS]  # L5-S1 (bottom of the plot) ... T12-L1 (top)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg`` atomically; closes the figure."""
    import io

    plt = _pyplot()
    out = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=150, bbox_inches="tight")
        out.append(write_bytes_atomic(f"{stem}.{ext}", buf.getvalue()))
    plt.close(fig)
    return out


def _cobb_groups(seqs, method: str, by: str = "action"):
    use = [(getattr(s, by), getattr(s, method)) for s in seqs if getattr(s, method) is not None]
    if not use:
        return {}, {}
    labels = [u[0] for u in use]
    return (group_values(labels, [u[1].lla for u in use]), group_values(labels, [u[1].tka for u in use]))


def _rom_by(seqs, key: str):
    """{(level, motion): {group: values}} of per-sequence ROM."""
    out: dict = {}
    for p in rom_per_sequence(seqs):
        out.setdefault((p["level"], p["motion"]), {}).setdefault(p[key], []).append(p["rom"])
    return out


def figure3_matplotlib(seqs, method: str = "geometric", cobb_bands: dict | None = None):
    """Fig. 3: violins of LLA and TKA per action (left), lumbar ROM per level with reference bands
    (right, one panel per motion: mean ± sd over sequences, grey band = literature lo–hi, black
    tick = representative value)."""
    plt = _pyplot()
    lla, tka = _cobb_groups(seqs, method)
    rom = _rom_by(seqs, "name")
    fig, axes = plt.subplots(1, 5, figsize=(20, 4.8), gridspec_kw={"width_ratios": [1.4, 1.4, 1, 1, 1]})
    for ax, data, title, key in ((axes[0], lla, "Lumbar lordosis L1–S1", "lla"),
                                 (axes[1], tka, "Thoracic kyphosis T3–T12", "tka")):
        groups = [g for g in data if filtered(data[g]).size]
        if groups:
            ax.violinplot([filtered(data[g]) for g in groups], showmeans=True, showextrema=True)
            ax.set_xticks(range(1, len(groups) + 1), groups, rotation=45, ha="right")
        band = (cobb_bands or {}).get(key)
        if band:
            ax.axhspan(band[0], band[1], color="tab:green", alpha=0.15, label=f"paper: means {band[0]}–{band[1]}°")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{title} ({method})")
        ax.set_ylabel("Cobb angle (°)")
    for ax, m in zip(axes[2:], MOTIONS, strict=True):
        y = np.arange(len(LUMBAR_LEVELS))
        for i, lv in enumerate(LUMBAR_LEVELS):
            b = reference_band(lv, m)
            if b:
                ax.plot([b[0], b[1]], [i, i], color="0.75", lw=8, solid_capstyle="butt",
                        label="White & Panjabi range" if i == 0 else None)
                ax.plot([b[2]], [i], "k|", ms=12, label="representative" if i == 0 else None)
        vals = [np.array(list(rom.get((lv, m), {}).values()), float) for lv in LUMBAR_LEVELS]
        mean = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in vals])
        sd = np.array([np.nanstd(v) if np.isfinite(v).sum() > 1 else 0.0 for v in vals])
        ax.errorbar(mean, y, xerr=sd, fmt="o-", color="tab:red", label="simspine (mean ± sd)")
        ax.set_yticks(y, LUMBAR_LEVELS)
        ax.set_xlabel("ROM (°, total)")
        ax.set_title(f"ROM: {MOTION_TITLES[m]}")
        ax.grid(axis="x", alpha=0.3)
    axes[2].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def figure4_matplotlib(seqs):
    """Fig. 4: neck ROM per action (one panel per motion; points = sequences, bar = mean; grey
    band = typical adult envelope)."""
    plt = _pyplot()
    rom = _rom_by(seqs, "action")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, m in zip(axes, MOTIONS, strict=True):
        data = rom.get(("neck", m), {})
        groups = list(data)
        for i, g in enumerate(groups):
            v = np.array(data[g], float)
            ax.bar(i, np.nanmean(v) if np.isfinite(v).any() else 0, color="tab:purple", alpha=0.5)
            ax.plot(np.full(v.size, i), v, "k.", ms=5)
        b = reference_band("neck", m)
        if b:
            ax.axhspan(b[0], b[1], color="0.85", zorder=0, label=f"typical adult total {b[0]:.0f}–{b[1]:.0f}°")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
        ax.set_ylabel("neck ROM (°, total)")
        ax.set_title(f"Neck {MOTION_TITLES[m]}")
    fig.tight_layout()
    return fig


def figure3_plotly(seqs, method: str = "geometric", cobb_bands: dict | None = None):
    """The Fig. 3 content as plotly figures: (violins of LLA/TKA per action, ROM per level)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lla, tka = _cobb_groups(seqs, method)
    v = make_subplots(rows=1, cols=2, subplot_titles=[f"Lumbar lordosis L1–S1 ({method}, °)",
                                                      f"Thoracic kyphosis T3–T12 ({method}, °)"])
    for col, (data, key) in enumerate(((lla, "lla"), (tka, "tka")), start=1):
        for g in data:
            x = filtered(data[g])
            if x.size:
                v.add_trace(go.Violin(y=x.tolist(), name=str(g), box_visible=True, meanline_visible=True,
                                      showlegend=False), 1, col)
        band = (cobb_bands or {}).get(key)
        if band:
            v.add_hrect(y0=band[0], y1=band[1], fillcolor="green", opacity=0.12, line_width=0, row=1, col=col)
    v.update_layout(title="LLA and TKA per action (outliers removed; green: the paper's per-action means)",
                    height=480)
    rom = _rom_by(seqs, "name")
    r = make_subplots(rows=1, cols=3, subplot_titles=[f"ROM {MOTION_TITLES[m]} (°, total)" for m in MOTIONS])
    for col, m in enumerate(MOTIONS, start=1):
        lo = [reference_band(lv, m) for lv in LUMBAR_LEVELS]
        r.add_trace(go.Bar(y=LUMBAR_LEVELS, x=[b[1] - b[0] for b in lo], base=[b[0] for b in lo], orientation="h",
                           marker_color="lightgrey", name="White & Panjabi range", showlegend=col == 1), 1, col)
        vals = [np.array(list(rom.get((lv, m), {}).values()), float) for lv in LUMBAR_LEVELS]
        mean = [float(np.nanmean(x)) if np.isfinite(x).any() else None for x in vals]
        sd = [float(np.nanstd(x)) if np.isfinite(x).sum() > 1 else 0.0 for x in vals]
        r.add_trace(go.Scatter(x=mean, y=LUMBAR_LEVELS, error_x=dict(array=sd), mode="markers+lines",
                               marker_color="#d62728", name="simspine mean ± sd", showlegend=col == 1), 1, col)
    r.update_layout(title="Lumbar ROM per level against reference bands", height=420, barmode="overlay")
    return v, r


def figure4_plotly(seqs):
    """The Fig. 4 content as a plotly figure: neck ROM per action, one panel per motion."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rom = _rom_by(seqs, "action")
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"Neck {MOTION_TITLES[m]} (°, total)" for m in MOTIONS])
    for col, m in enumerate(MOTIONS, start=1):
        data = rom.get(("neck", m), {})
        for g, vals in data.items():
            fig.add_trace(go.Box(y=list(vals), name=str(g), boxpoints="all", showlegend=False,
                                 marker_color="#9467bd"), 1, col)
        b = reference_band("neck", m)
        if b:
            fig.add_hrect(y0=b[0], y1=b[1], fillcolor="grey", opacity=0.15, line_width=0, row=1, col=col)
    fig.update_layout(title="Neck ROM per action (grey: typical adult total envelope)", height=420)
    return fig
