"""``simspine bench build``: projection arithmetic, and the command on a tiny tree."""

from __future__ import annotations

import math
import os
import re

import pytest

from simspine.bench.build import SIMSPINE_FRAMES, projected_hours, projection_rows
from simspine.cli import main


def test_projected_hours():
    # 2.14 M frames at 10 frames/s per core: 214,000 core-seconds
    assert projected_hours(SIMSPINE_FRAMES, 10.0, 1) == pytest.approx(214_000 / 3600)
    assert projected_hours(SIMSPINE_FRAMES, 10.0, 64) == pytest.approx(214_000 / 3600 / 64)
    assert projected_hours(3600, 1.0, 1) == 1.0
    assert math.isnan(projected_hours(100, 0.0, 4))


def test_projection_rows():
    rows = projection_rows([{"label": "parallel", "frames": 200, "seconds": 10.0, "cores": 2},
                            {"label": "serial", "frames": 200, "seconds": 20.0, "cores": 1, "serial": True}],
                           total_frames=360_000, cores_here=4, node_cores=64)
    # parallel: 20 frames/s on 2 cores = 10 per core; 360,000 frames = 10 h on one core
    assert rows[0][1:] == [200, "10.0", 2, "20.0", "10.00", "2.5", f"{10 / 64:.1f}"]
    # serial: 10 frames/s on one core whatever the machine: 10 h here and on the node
    assert rows[1][1:] == [200, "20.0", 1, "10.0", "10.00", "10.0", "10.0"]


@pytest.mark.slow
def test_bench_build_runs_on_a_tiny_tree(tmp_path, capsys):
    rc = main(["bench", "build", "--actions", "Walking 1", "--frames", "20", "--workers", "1", "--out", str(tmp_path),
               "--ik-backend", "jacobian"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "simspine build-dataset, end to end (Dask, jacobian IK)" in out and "OpenSim IK tool per sequence" in out
    assert "h on a 64-core node" in out and "the tool's frames/s" in out
    # each row: 20 frames, positive rates, hours = 2.14 M / (per-core rate x cores) / 3600
    for label, cores in (("end to end (Dask", 2), ("sequence tasks only", 2), ("serial (IK only)", 1)):
        line = next(ln for ln in out.splitlines() if label in ln)
        frames, wall, _, fps, per_core, here, node = (float(c) for c in re.split(r"\s{2,}", line.strip())[1:])
        assert frames == 20 and fps > 0 and per_core > 0
        n_here = os.cpu_count() if cores == 2 else 1
        assert here == pytest.approx(SIMSPINE_FRAMES / (per_core * n_here) / 3600, rel=0.05, abs=0.1)
    assert (tmp_path / "build" / "simspine.h5").is_file()
