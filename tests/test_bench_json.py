"""Every `simspine bench` subcommand takes --json FILE; a benchmark without its own gets it from
simspine.commands.bench and its figures are written (read back here with the json module)."""

from __future__ import annotations

import json

import pytest


def _bench_parsers():
    from simspine.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    bench = sub.choices["bench"]
    bsub = next(a for a in bench._actions if a.__class__.__name__ == "_SubParsersAction")
    return bsub.choices


def test_every_benchmark_has_json_option():
    parsers = _bench_parsers()
    assert {"2d", "lift", "multiview", "triangulation", "ik", "real", "closed-loop", "build"} <= set(parsers)
    for name, p in parsers.items():
        assert any("--json" in a.option_strings for a in p._actions), name


def test_json_written_for_a_benchmark_without_its_own(tmp_path, capsys, monkeypatch):
    """The dispatcher adds --json and writes what run() left in args.figures (numpy converted)."""
    import argparse
    import types

    import numpy as np

    import simspine.commands.bench as cb

    def run(args):
        args.figures = {"rows": [["a", np.float64(1.5), np.int64(3)]], "arr": np.arange(3)}
        return 0

    fake = types.SimpleNamespace(NAME="fake", HELP="h", add_arguments=lambda p: None, run=run)
    monkeypatch.setattr(cb, "_benchmarks", lambda: [fake])
    p = argparse.ArgumentParser()
    cb.add_arguments(p)
    assert cb.run(p.parse_args(["fake", "--json", str(tmp_path / "f.json")])) == 0
    assert json.loads((tmp_path / "f.json").read_text()) == {"benchmark": "fake",
                                                              "figures": {"rows": [["a", 1.5, 3]], "arr": [0, 1, 2]}}
    assert cb.run(p.parse_args(["fake"])) == 0  # no --json: nothing written, no error


@pytest.mark.slow
def test_triangulation_json_matches_printed_table(tmp_path, capsys):
    pytest.importorskip("aniposelib")
    from simspine.cli import main

    assert main(["bench", "triangulation", "--frames", "20", "--ransac-points", "5",
                 "--json", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / "t.json").read_text())
    assert r["benchmark"] == "triangulation" and r["figures"]["headers"][0] == "method"
    rows = {row[0]: row for row in r["figures"]["rows"]}
    dlt = rows["simspine DLT"]
    assert dlt[1] == 20 * 37 and f"{dlt[5]:.3g}" in out  # MPJPE as printed
