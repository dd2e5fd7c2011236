"""Every user error of the CLI is one line on stderr and a non-zero exit (issue 8), and a stage
that produces nothing is an error that says what to check (issue 9).

Everything runs in-process through :func:`simspine.cli.main`. Not-writable folders and full disks
are simulated by making the file functions raise ``OSError`` (tests may run as root, where file
permissions do not stop writes).
"""

import dataclasses
import errno
import os
import pathlib
import tempfile

import numpy as np
import pytest

from simspine.calibration import h36m_cameras, write_calibration_toml
from simspine.cli import main
from simspine.errors import InputError
from simspine.fileio import OutputError, atomic_path, ensure_out_dir, write_text_atomic
from simspine.io.openpose import write_openpose_folder

T, K = 6, 37


def _run(argv, capsys) -> tuple[int, list[str]]:
    """Exit status and stderr lines of ``simspine ARGV`` (argparse's SystemExit included)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    return rc, err.splitlines()


def _one_error_line(argv, capsys, *words) -> str:
    rc, lines = _run(argv, capsys)
    assert rc not in (0, None), f"{argv} exited 0"
    assert len(lines) == 1, f"{argv}: stderr has {len(lines)} lines: {lines}"
    line = lines[0]
    assert "error" in line and "Traceback" not in line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    return line


def _session(folder: pathlib.Path, t_scale: float = 1.0, conf: float = 1.0) -> pathlib.Path:
    """A tiny Pose2Sim-style session: Human3.6M S9's cameras watching random points; the written
    calibration's translations are multiplied by ``t_scale`` (1000: a calibration in mm)."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(-0.3, 0.3, K), rng.uniform(-0.3, 0.3, K), rng.uniform(0.1, 1.8, K)][None].repeat(T, 0)
    cams = [c.converted("opencv", exact=False) for c in h36m_cameras("S9")]
    write_calibration_toml(folder / "calibration" / "Calib.toml",
                           [dataclasses.replace(c, t=c.t * t_scale) for c in cams])
    for c in cams:
        uv = c.project(X)
        write_openpose_folder(folder / "pose" / f"{c.name}_json", uv, np.full(uv.shape[:2], conf))
    (folder / "Config.toml").write_text("[project]\nframe_rate = 50\n")
    return folder


# ---- option values: argparse's one-line usage error, exit 2 -------------------------------------
BAD_OPTIONS = [
    (["triangulate", "S", "--out", "O", "--fps", "0"], "--fps"),
    (["triangulate", "S", "--out", "O", "--fps", "-5"], "--fps"),
    (["triangulate", "S", "--out", "O", "--fps", "nan"], "--fps"),
    (["triangulate", "S", "--out", "O", "--conf-threshold", "1.5"], "--conf-threshold"),
    (["triangulate", "S", "--out", "O", "--conf-threshold", "-0.1"], "--conf-threshold"),
    (["triangulate", "S", "--out", "O", "--reproj-threshold", "-1"], "--reproj-threshold"),
    (["triangulate", "S", "--out", "O", "--huber", "0"], "--huber"),
    (["annotate", "S", "--out", "O", "--cutoff", "-6"], "--cutoff"),
    (["annotate", "S", "--out", "O", "--order", "0"], "--order"),
    (["annotate", "S", "--out", "O", "--max-gap", "-1"], "--max-gap"),
    (["annotate", "S", "--out", "O", "--mass", "0"], "--mass"),
    (["annotate", "S", "--out", "O", "--height", "-1.7"], "--height"),
    (["annotate", "S", "--out", "O", "--pseudo-conf", "2"], "--pseudo-conf"),
    (["annotate", "S", "--out", "O", "--fps", "0"], "--fps"),
    (["ik", "M.trc", "--out", "O", "--mass", "-70"], "--mass"),
    (["ik", "M.trc", "--out", "O", "--height", "0"], "--height"),
    (["ik", "M.trc", "--out", "O", "--smoothness", "-1"], "--smoothness"),
    (["ik", "M.trc", "--out", "O", "--mass", "heavy"], "--mass"),
    (["synth", "--out", "O", "--seconds", "0"], "--seconds"),
    (["synth", "--out", "O", "--fps", "-50"], "--fps"),
    (["synth", "--out", "O", "--outlier-rate", "1.5"], "--outlier-rate"),
    (["synth", "--out", "O", "--seed", "-1"], "--seed"),
    (["synth", "--out", "O", "--noise-px", "-3"], "--noise-px"),
    (["demo", "--seconds", "-1"], "--seconds"),
    (["bench", "triangulation", "--frames", "0"], "--frames"),
    (["bench", "ik", "--frames", "-5"], "--frames"),
    (["bench", "closed-loop", "--seconds", "0"], "--seconds"),
    (["bench", "closed-loop", "--outliers", "0", "2"], "--outliers"),
]


@pytest.mark.parametrize("argv, option", BAD_OPTIONS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_OPTIONS])
def test_bad_option_value_is_one_usage_line(argv, option, capsys):
    rc, lines = _run(argv, capsys)
    assert rc == 2 and len(lines) == 1, lines
    assert option in lines[0] and ("must be" in lines[0] or "expected a number" in lines[0])
    assert "--help" in lines[0]  # where to read more, instead of argparse's usage block


def test_unknown_option_and_missing_argument_are_one_line(capsys):
    assert _run(["triangulate", "S", "--out", "O", "--no-such-option"], capsys)[1][0].count("error") == 1
    rc, lines = _run(["triangulate", "S"], capsys)  # --out missing
    assert rc == 2 and len(lines) == 1 and "--out" in lines[0]


# ---- the output folder ----------------------------------------------------------------------------
OUT_COMMANDS = [
    ["triangulate", "S", "--out"],
    ["annotate", "S", "--out"],
    ["ik", "M.trc", "--out"],
    ["fk", "M.mot", "--out"],
    ["synth", "--out"],
    ["demo", "--out"],
    ["bench", "closed-loop", "--workdir"],
]


@pytest.mark.parametrize("argv", OUT_COMMANDS, ids=[a[0] if a[0] != "bench" else a[1] for a in OUT_COMMANDS])
def test_out_that_is_a_file_or_under_a_file(argv, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    _one_error_line(argv + [f], capsys, str(f), "is a file, not a folder", "--out")
    _one_error_line(argv + [f / "sub" / "dir"], capsys, str(f / "sub" / "dir"), "not a folder")
    assert f.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_out_not_writable(tmp_path, capsys, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    line = _one_error_line(["triangulate", tmp_path / "S", "--out", tmp_path / "out"], capsys,
                           "permission denied", str(tmp_path / "out"), "--out")
    assert line.startswith("simspine triangulate: error:")


def test_out_on_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    _one_error_line(["synth", "--out", tmp_path / "out"], capsys, "read-only", str(tmp_path / "out"))


def test_ensure_out_dir_creates_and_leaves_nothing(tmp_path):
    out = ensure_out_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        ensure_out_dir(f)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "f"]


# ---- full disk ------------------------------------------------------------------------------------
def _disk_full_after(monkeypatch, n_bytes: int = 10):
    """Make every text write put ``n_bytes`` on disk, then fail as a full disk does."""
    real = pathlib.Path.write_text

    def write_text(self, data, *a, **k):
        real(self, data[:n_bytes], *a, **k)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)


def test_disk_full_while_writing_is_one_line_and_leaves_no_file(tmp_path, capsys, monkeypatch):
    s = _session(tmp_path / "S")
    out = tmp_path / "out"
    _disk_full_after(monkeypatch)
    line = _one_error_line(["triangulate", s, "--out", out], capsys, "no space left on device writing",
                           str(out / "triangulated.trc"), "free space or choose another --out")
    assert "Traceback" not in line
    assert out.is_dir() and sorted(os.listdir(out)) == []  # neither the temporary nor the final file


def test_disk_full_in_npz_write_leaves_no_file(tmp_path, monkeypatch):
    from simspine.io.npz import write_trajectories_npz  # noqa: F401  (same atomic path as every writer)

    def savez(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", savez)
    with pytest.raises(OutputError) as e, atomic_path(tmp_path / "x.npz") as tmp, open(tmp, "wb") as f:
        f.write(b"half")
        np.savez_compressed(f, a=np.zeros(3))
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert str(e.value) == (f"no space left on device writing {tmp_path / 'x.npz'}; free space or choose another --out")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_a_full_disk(tmp_path, monkeypatch):
    p = write_text_atomic(tmp_path / "a.txt", "old")
    _disk_full_after(monkeypatch, 1)
    with pytest.raises(OutputError, match="no space left"):
        write_text_atomic(p, "new contents")
    monkeypatch.undo()
    assert p.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_os_error_outside_atomic_writes_is_one_line(tmp_path, capsys, monkeypatch):
    import simspine.multiview.reconstruct as rec

    target = tmp_path / "out" / "triangulated.trc"

    def write_triangulation(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(rec, "write_triangulation", write_triangulation)
    rc, lines = _run(["triangulate", _session(tmp_path / "S"), "--out", tmp_path / "out"], capsys)
    assert rc == 1 and len(lines) == 1
    assert f"no space left on device writing {target}" in lines[0]


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    import simspine.multiview.reconstruct as rec

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(rec, "triangulate_session", broken)
    with pytest.raises(ZeroDivisionError):
        main(["triangulate", str(_session(tmp_path / "S")), "--out", str(tmp_path / "out")])


def test_multi_line_error_message_is_printed_as_one_line(capsys, monkeypatch):
    import simspine.commands.fk as fk

    def run(args):
        raise InputError("M.mot", "first line\nsecond line")

    monkeypatch.setattr(fk, "run", run)
    _one_error_line(["fk", "M.mot", "--out", "O"], capsys, "M.mot: first line second line")


# ---- nothing produced is an error ---------------------------------------------------------------
def test_calibration_in_millimetres_is_named(tmp_path, capsys):
    s = _session(tmp_path / "S", t_scale=1000.0)
    out = tmp_path / "out"
    line = _one_error_line(["triangulate", s, "--out", out], capsys, str(s), "no valid 3D point", "millimetres")
    assert "divide" in line
    assert not (out / "triangulated.trc").exists() and not (out / "triangulated.npz").exists()
    # annotate stops at the same place, with the same message, and writes no all-NaN stage output
    out2 = tmp_path / "out2"
    _one_error_line(["annotate", s, "--out", out2, "--front-end-only", "--quiet"], capsys, "millimetres")
    assert not list(out2.glob("*.trc")) and not list(out2.glob("*.npz"))


def test_no_confident_keypoint_names_the_threshold(tmp_path, capsys):
    s = _session(tmp_path / "S", conf=0.1)
    _one_error_line(["triangulate", s, "--out", tmp_path / "out"], capsys, "no valid 3D point", "--conf-threshold",
                    "0.10")
    # the same session with a threshold under its confidences triangulates
    assert main(["triangulate", str(s), "--out", str(tmp_path / "out"), "--conf-threshold", "0.05"]) == 0
    assert (tmp_path / "out" / "triangulated.trc").exists()


def test_views_that_never_agree_name_the_calibration(tmp_path):
    from simspine.io.session import load_session
    from simspine.multiview.reconstruct import require_points, triangulate_session

    session = load_session(_session(tmp_path / "S"))
    rec = triangulate_session(session)
    require_points(session, rec)  # valid points: nothing to say
    rec.result.valid[:] = False  # as if no view pair had agreed anywhere
    with pytest.raises(InputError) as e:
        require_points(session, rec)
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "S")) and "100% of keypoint-frames" in msg
    assert "calibration belongs to these videos" in msg and "--reproj-threshold" in msg
    assert "millimetres" not in msg


def test_stage_that_produces_nothing_is_an_error():
    from simspine.annotate import _require_finite
    from simspine.trajectories import Trajectories

    names = ["a", "b"]
    empty = Trajectories(np.arange(4) / 50, names, np.full((4, 2, 3), np.nan), np.zeros((4, 2)), "Y up", {})
    with pytest.raises(InputError, match="filter produced no valid point.*--cutoff"):
        _require_finite(empty, "filter", "S")
    with pytest.raises(InputError, match="merge produced no valid point.*trusted"):
        _require_finite(empty, "merge", "T.trc")
    ok = Trajectories(np.arange(4) / 50, names, np.zeros((4, 2, 3)), np.ones((4, 2)), "Y up", {})
    assert _require_finite(ok, "filter", "S") is ok


def test_describe_os_error_names_the_path_and_what_to_do():
    from simspine.fileio import describe_os_error

    p = "/data/out/x.trc"
    cases = {errno.ENOSPC: "no space left on device writing", errno.EACCES: "permission denied writing",
             errno.EROFS: "read-only file system", errno.ENOTDIR: "not a folder", errno.EIO: "writing /data/out/x.trc failed"}
    for code, words in cases.items():
        msg = describe_os_error(OSError(code, os.strerror(code)), p)
        assert words in msg and p in msg and "\n" not in msg, msg
    assert "--out" in describe_os_error(OSError(errno.ENOSPC, "full"), p)


def test_cutoff_at_or_above_nyquist_is_one_line(tmp_path, capsys):
    s = _session(tmp_path / "S")  # 50 fps
    _one_error_line(["annotate", s, "--out", tmp_path / "out", "--cutoff", "25", "--front-end-only", "--quiet"],
                    capsys, "cutoff", "Nyquist", "25")
    assert not (tmp_path / "out" / "filtered.trc").exists()


def test_unknown_command_is_one_line(capsys):
    rc, lines = _run(["no-such-command"], capsys)
    assert rc == 2 and len(lines) == 1 and "invalid choice" in lines[0]
