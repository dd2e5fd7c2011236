"""``simspine bench triangulation`` runs end to end on a tiny problem and prints its table."""

import pytest

from simspine.cli import main


def test_bench_triangulation_quick(capsys):
    pytest.importorskip("aniposelib")
    assert main(["bench", "triangulation", "--frames", "20", "--ransac-points", "5"]) == 0
    out = capsys.readouterr().out
    for row in ("simspine DLT", "simspine robust", "aniposelib triangulate", "triangulate_ransac", "points/s"):
        assert row in out
    assert "x aniposelib DLT speed" in out
