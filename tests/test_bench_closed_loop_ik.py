"""``simspine bench closed-loop --ik-backend/--ik-smoothness``: the IK options reach annotate, are
recorded per cell, and cells of other IK settings live beside the default ones (the pipeline itself
is replaced by a stub here: what it computes is tested in test_closed_loop.py)."""

import json
from types import SimpleNamespace

import pytest

from simspine.bench import closed_loop as bench
from simspine.biomech.fitting import DEFAULT_SMOOTHNESS_50HZ
from simspine.cli import build_parser
from simspine.synth.evaluate import ClosedLoopErrors


@pytest.fixture
def calls(monkeypatch):
    """Replace the closed loop by a stub recording its annotate options; L5/S1 flexion RMSE = call index."""
    seen = []

    def fake(cfg, cell, **opts):
        seen.append((cell.name, opts))
        lum = {lvl: {"Flex_Ext": float(len(seen)), "Lat_Bending": 0.0, "axial_rotation": 0.0}
               for lvl in ("L5_S1",)}
        err = ClosedLoopErrors(10, {"spine": 1.0, "lumbar": 1.0, "thoracic": 1.0, "cervical": 1.0},
                               {"spine": 2.0}, None, lum, {"neck_flexion": 1.0})
        return SimpleNamespace(errors=err)

    monkeypatch.setattr("simspine.synth.loop.closed_loop", fake)
    return seen


def test_smoothness_reaches_annotate_and_cells_are_kept_apart(tmp_path, calls):
    kw = dict(seconds=0.5, noises=(5.0,), outliers=(0.0,), progress=False)
    default = bench.sweep(tmp_path, **kw)
    off = bench.sweep(tmp_path, smoothness=0.0, **kw)
    batched = bench.sweep(tmp_path, ik_backend="batched", smoothness=0.0, **kw)
    assert [c[0] for c in calls] == ["noise5px_outliers0pct", "noise5px_outliers0pct_ik-jacobian-smooth0",
                                     "noise5px_outliers0pct_ik-batched-smooth0"]
    assert [c[1]["ik_options"]["smoothness"] for c in calls] == [DEFAULT_SMOOTHNESS_50HZ, 0.0, 0.0]
    assert [c[1]["ik_backend"] for c in calls] == ["jacobian", "jacobian", "batched"]
    assert default[0]["ik"] == {"backend": "jacobian", "smoothness": DEFAULT_SMOOTHNESS_50HZ}
    assert off[0]["ik"]["smoothness"] == 0.0 and batched[0]["ik"]["backend"] == "batched"
    # each setting reuses its own cell: no new run, the same numbers back
    assert bench.sweep(tmp_path, smoothness=0.0, **kw) == off
    assert bench.sweep(tmp_path, smoothness=DEFAULT_SMOOTHNESS_50HZ, **kw) == default
    assert len(calls) == 3
    assert off[0]["errors"]["lumbar_rmse_deg"]["L5_S1"]["Flex_Ext"] == 2.0


def test_cell_without_ik_record_counts_as_default(tmp_path, calls):
    """A cell written before the IK options existed ran the defaults: reused for them only."""
    kw = dict(seconds=0.5, noises=(5.0,), outliers=(0.0,), progress=False)
    first = bench.sweep(tmp_path, **kw)
    done = tmp_path / "noise5px_outliers0pct" / "closed_loop.json"
    d = json.loads(done.read_text())
    del d["ik"]
    done.write_text(json.dumps(d))
    assert bench.sweep(tmp_path, **kw)[0]["errors"] == first[0]["errors"]
    assert len(calls) == 1
    # a cell that holds another smoothness than asked is rerun
    d["ik"] = {"backend": "jacobian", "smoothness": 0.5}
    done.write_text(json.dumps(d))
    bench.sweep(tmp_path, **kw)
    assert len(calls) == 2


def test_cli_options(tmp_path):
    args = build_parser().parse_args(["bench", "closed-loop", "--workdir", str(tmp_path), "--ik-smoothness", "0",
                                      "--ik-backend", "batched"])
    assert args.ik_smoothness == 0.0 and args.ik_backend == "batched"
    assert build_parser().parse_args(["bench", "closed-loop"]).ik_smoothness is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "closed-loop", "--ik-smoothness", "-1"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "closed-loop", "--ik-backend", "opensim"])
