import subprocess
import sys

from simspine import __version__
from simspine.cli import build_parser, main


def test_version_and_help(capsys):
    out = subprocess.run([sys.executable, "-m", "simspine.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "demo" in sub.choices and "bench" in sub.choices
    for name, p in sub.choices.items():
        text = p.format_help()
        assert name in text and "usage" in text


def test_atomic_write_permissions_and_no_partial_file(tmp_path):
    import os

    import pytest

    from simspine.fileio import atomic_path, write_text_atomic

    out = write_text_atomic(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == 0o666 & ~mask
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_no_abbreviated_options():
    # "--out" must not be taken for "--outliers" (argparse's prefix matching is off)
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "closed-loop", "--out", "x"])
