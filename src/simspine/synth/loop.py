"""The closed loop: synthetic session -> ``simspine annotate`` -> errors against the truth.

:func:`closed_loop` writes a synthetic session, runs the pipeline on it exactly as a user would
(:func:`run_annotate`, which calls :func:`simspine.annotate.annotate` and collects what it
wrote), and compares the result with the ground truth (:mod:`simspine.synth.evaluate`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.synth.evaluate import ClosedLoopErrors, closed_loop_errors
from simspine.synth.session import SynthConfig, SyntheticSession, synthesize


@dataclass
class Recovered:
    """What the pipeline recovered (OpenSim ground frame, Y up, metres; coordinates in radians).

    Attributes:
        time, keypoints: (T,), (T, 37, 3) final keypoints (forward kinematics of the fitted model).
        tri_time, tri_keypoints: (T',), (T', 37, 3) triangulated keypoints, or None.
        filt_time, filt_keypoints: the same after filtering, or None.
        coordinate_names, coordinates: fitted model coordinates (T, N), rad / m.
        stage_seconds: stage name -> wall time (s); ``n_frames`` frames went through each.
        out_dir: where the pipeline wrote its outputs.
    """

    time: np.ndarray
    keypoints: np.ndarray
    coordinate_names: list[str]
    coordinates: np.ndarray
    tri_time: np.ndarray | None = None
    tri_keypoints: np.ndarray | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    n_frames: int = 0
    out_dir: Path | None = None
    filt_time: np.ndarray | None = None
    filt_keypoints: np.ndarray | None = None


def run_annotate(session_dir: str | os.PathLike, out_dir: str | os.PathLike, *, progress: bool = False,
                 log=print, **options) -> Recovered:
    """Run :func:`simspine.annotate.annotate` on a session folder and collect its results.

    ``options`` go to annotate as they are (``ik_options={"coordinate_tasks": (), "smoothness": 0}``
    switches off the IK's coordinate prior and temporal smoothness, for the noise-free check).
    """
    from simspine.annotate import annotate

    out_dir = Path(out_dir)
    res = annotate(session_dir, out_dir, progress=progress, log=log, **options)
    kp, coords = res.keypoints, res.coordinates
    if kp is None or coords is None:
        raise InputError(out_dir, "annotate produced no model keypoints or coordinates (biomechanical stages "
                                  "did not run; see its summary.txt)")
    stages = {k: v for k, v in res.timings.items() if k != "biomech other"}
    return Recovered(np.asarray(kp.time, float), np.asarray(kp.xyz, float), list(coords.names),
                     np.asarray(coords.values, float), np.asarray(res.triangulated.time, float),
                     np.asarray(res.triangulated.xyz, float), stages, int(len(kp.time)), out_dir,
                     np.asarray(res.filtered.time, float), np.asarray(res.filtered.xyz, float))


@dataclass
class LoopResult:
    """A closed-loop run: the session (truth), what was recovered, the errors and timings."""

    session: SyntheticSession
    recovered: Recovered
    errors: ClosedLoopErrors
    synth_seconds: float

    def stage_rates(self) -> list[tuple[str, float, float]]:
        """(stage, seconds, frames/s) for the synthesis and every pipeline stage."""
        n = self.session.truth.keypoints.n_frames
        rows = [("synthesise session", self.synth_seconds, n / max(self.synth_seconds, 1e-9))]
        for k, v in self.recovered.stage_seconds.items():
            rows.append((k, float(v), n / max(float(v), 1e-9)))
        return rows


def closed_loop(config: SynthConfig, workdir: str | os.PathLike, **annotate_options) -> LoopResult:
    """Write a synthetic session under ``workdir/session``, annotate it into ``workdir/annotate``,
    and compare with the truth."""
    workdir = Path(workdir)
    t0 = time.perf_counter()
    session = synthesize(workdir / "session", config)
    t_synth = time.perf_counter() - t0
    rec = run_annotate(workdir / "session", workdir / "annotate", **annotate_options)
    tr = session.truth
    err = closed_loop_errors(tr.keypoints.time, tr.keypoints.xyz, tr.coordinate_names, tr.coordinates,
                             rec.time, rec.keypoints, rec.coordinate_names, rec.coordinates,
                             rec.tri_time, rec.tri_keypoints, rec.filt_time, rec.filt_keypoints)
    return LoopResult(session, rec, err, t_synth)
