"""Tests of ``simspine.io.trc`` written to kill mutmut's surviving mutants (issue 16, docs/mutation.md).

The writer is checked by its exact text and by OpenSim's ``TimeSeriesTableVec3`` (values, units,
rate); the reader by exact values, metadata and the exact message a user sees (file + line + problem).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from simspine.errors import InputError
from simspine.io.trc import TRCWarning, read_trc, write_trc
from simspine.trajectories import Trajectories

osim = pytest.importorskip("opensim")

KEYS = "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames"


def _tr(frame="lab\tY up"):
    xyz = np.array([[[0.001, 1.5, -2.0], [np.nan, np.nan, np.nan]],
                    [[1.23456789012, 0.0, 3.0], [0.25, -0.5, 1e-6]]])
    return Trajectories([0.0, 0.04], ["hip_X", "knee"], xyz, frame=frame)


def _write(p, header3="25\t25\t1\t1\tm\t25\t1\t1", names="Frame#\tTime\tA\t\t\t", rows=("1\t0\t1\t2\t3",),
           first="PathFileType\t4\t(X/Y/Z)\tx.trc", keys=KEYS, sub="\t\tX1\tY1\tZ1"):
    p.write_text("\n".join([first, keys, header3, names, sub, *rows]) + "\n")
    return p


# ---- writer -----------------------------------------------------------------------------------------
def test_write_trc_exact_text_mm_and_opensim(tmp_path):
    p = write_trc(tmp_path / "m.trc", _tr(), units="mm", note="two\twords\n here")
    expected = [
        "PathFileType\t4\t(X/Y/Z)\tm.trc\tframe=lab Y up\tnote=two words here",
        KEYS,
        "25\t25\t2\t2\tmm\t25\t1\t2",
        "Frame#\tTime\thip_X\t\t\tknee\t\t",
        "\t\tX1\tY1\tZ1\tX2\tY2\tZ2",
        "1\t0\t1\t1500\t-2000\tNaN\tNaN\tNaN",
        "2\t0.04\t1234.56789\t0\t3000\t250\t-500\t0.001",
    ]
    assert p.read_text() == "\n".join(expected) + "\n"
    table = osim.TimeSeriesTableVec3(str(p))
    assert list(table.getColumnLabels()) == ["hip_X", "knee"]
    assert table.getTableMetaDataAsString("Units") == "mm"
    assert float(table.getTableMetaDataAsString("DataRate")) == 25.0
    assert table.getTableMetaDataAsString("NumFrames") == "2"
    assert table.getTableMetaDataAsString("NumMarkers") == "2"
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), [0.0, 0.04])
    flat = table.flatten()
    vals = np.array(flat.getMatrix().to_numpy()).reshape(2, 2, 3)
    np.testing.assert_allclose(vals / 1000.0, _tr().xyz, rtol=1e-9, atol=1e-12, equal_nan=True)
    back = read_trc(p)
    assert back.frame == "lab Y up" and back.names == ["hip_X", "knee"]
    np.testing.assert_allclose(back.xyz, _tr().xyz, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert back.meta["Units"] == "mm" and back.meta["delimiter"] == "tab"
    assert back.meta["header"] == expected[0]


def test_write_trc_rate_defaults_and_cm(tmp_path):
    one = Trajectories([2.0], ["a"], [[[0.1, 0.2, 0.3]]])
    p = write_trc(tmp_path / "one.trc", one, units="cm")
    lines = p.read_text().splitlines()
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\tone.trc\tframe=opensim-ground (Y up)"
    assert lines[2] == "1\t1\t1\t1\tcm\t1\t1\t1"
    assert lines[5] == "1\t2\t10\t20\t30"
    q = write_trc(tmp_path / "r.trc", _tr(), rate=120.5)
    assert q.read_text().splitlines()[2] == "120.5\t120.5\t2\t2\tm\t120.5\t1\t2"
    assert float(osim.TimeSeriesTableVec3(str(q)).getTableMetaDataAsString("DataRate")) == 120.5


@pytest.mark.parametrize("bad", ["a\tb", "a\rb", "a\nb", ""])
def test_write_trc_rejects_bad_names(tmp_path, bad):
    tr = Trajectories([0.0], ["ok", bad], np.zeros((1, 2, 3)))
    with pytest.raises(InputError) as ei:
        write_trc(tmp_path / "n.trc", tr)
    assert str(ei.value) == (f"{tmp_path / 'n.trc'}: marker name {bad!r} cannot be written to a TRC file "
                             "(empty or has tabs/newlines)")


def test_write_trc_rejects_units(tmp_path):
    with pytest.raises(InputError) as ei:
        write_trc(tmp_path / "u.trc", _tr(), units="in")
    assert str(ei.value) == f"{tmp_path / 'u.trc'}: unsupported TRC units 'in' (use one of ['cm', 'm', 'mm'])"


# ---- reader -----------------------------------------------------------------------------------------
def test_read_trc_header_meta_frame_and_units(tmp_path):
    p = _write(tmp_path / "a.trc", first="PathFileType\t4\t(X/Y/Z)\tx.trc\tframe=  my frame  \tnote=n",
               header3="25\t25\t1\t1\tcm\t25\t1\t1", keys=KEYS + "\t", rows=("1\t0.5\t1\t\t3\t\t",))
    t = read_trc(p)
    assert t.frame == "my frame" and t.names == ["A"]
    np.testing.assert_array_equal(t.time, [0.5])
    np.testing.assert_allclose(t.xyz, [[[0.01, np.nan, 0.03]]], equal_nan=True)
    np.testing.assert_array_equal(t.conf, [[0.0]])
    assert t.meta == {"DataRate": "25", "CameraRate": "25", "NumFrames": "1", "NumMarkers": "1", "Units": "cm",
                      "OrigDataRate": "25", "OrigDataStartFrame": "1", "OrigNumFrames": "1",
                      "header": "PathFileType\t4\t(X/Y/Z)\tx.trc\tframe=  my frame  \tnote=n", "delimiter": "tab"}
    q = _write(tmp_path / "b.trc", first="PathFileType\t4\t(X/Y/Z)\tx.trc\tframe=\tz",
               keys="DataRate\tNumFrames", header3="25\t1")
    u = read_trc(q)
    assert u.frame == "opensim-ground (Y up)"
    np.testing.assert_array_equal(u.xyz, [[[1, 2, 3]]])  # no Units key: metres
    assert u.meta["delimiter"] == "tab" and "Units" not in u.meta


def test_read_trc_comma_and_space(tmp_path):
    c = tmp_path / "c.trc"
    c.write_text("PathFileType,4,(X/Y/Z),c.trc\nDataRate,Units,NumMarkers\n10,mm,2\nFrame#,Time,A,,,B,,\n"
                 ",,X1,Y1,Z1,X2,Y2,Z2\n1,0,1,2,3,4,5,6\n\n2,0.1,1,,3,4,5,6,,\n")
    t = read_trc(c)
    assert t.names == ["A", "B"] and t.meta["delimiter"] == "comma"
    np.testing.assert_allclose(t.xyz, [[[1e-3, 2e-3, 3e-3], [4e-3, 5e-3, 6e-3]],
                                       [[1e-3, np.nan, 3e-3], [4e-3, 5e-3, 6e-3]]], equal_nan=True)
    s = tmp_path / "s.trc"
    s.write_text("PathFileType 4 (X/Y/Z) s.trc\nDataRate  Units NumMarkers\n10 m 2\nFrame#  Time  A  B\n"
                 "   X1 Y1 Z1 X2 Y2 Z2\n1  0  1 2 3  4 5 6\n")
    u = read_trc(s)
    assert u.names == ["A", "B"] and u.meta["delimiter"] == "space" and u.meta["Units"] == "m"
    np.testing.assert_array_equal(u.xyz, [[[1, 2, 3], [4, 5, 6]]])


def test_read_trc_numframes_warnings(tmp_path):
    rows = ("1\t0\t1\t2\t3", "2\t0.1\t1\t2\t3")
    for declared, text in [("3", "header says NumFrames=3 but the file has 2 data rows (fewer rows than "
                                 "declared: the file may be truncated); the 2 rows are used"),
                           ("1", "header says NumFrames=1 but the file has 2 data rows (more rows than "
                                 "declared); the 2 rows are used"),
                           ("many", "NumFrames is 'many', not a number; 2 data rows used")]:
        p = _write(tmp_path / f"w{declared}.trc", header3=f"25\t25\t{declared}\t1\tm\t25\t1\t2", rows=rows)
        with pytest.warns(TRCWarning) as rec:
            t = read_trc(p)
        assert [str(w.message) for w in rec] == [f"{p}: {text}"]
        assert t.meta["warnings"] == [text] and t.n_frames == 2
    p = _write(tmp_path / "ok.trc", header3="25\t25\t2.0\t1\tm\t25\t1\t2", rows=rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "warnings" not in read_trc(p).meta


def _msg(p, problem):
    with pytest.raises(InputError) as ei:
        read_trc(p)
    assert str(ei.value) == f"{p}: {problem}"


def test_read_trc_error_messages(tmp_path):
    p = tmp_path / "e.trc"
    _msg(tmp_path / "none.trc", "cannot read TRC file: No such file or directory")
    p.write_text("PathFileType\na\nb\nc\n")
    _msg(p, "not a TRC file (expected a 'PathFileType' line and 4 more header lines)")
    p.write_text("Path\na\nb\nc\nd\n")
    _msg(p, "not a TRC file (expected a 'PathFileType' line and 4 more header lines)")
    _msg(_write(p, header3="25\t25\t1\t1\tinch\t25\t1\t1"), "unsupported units 'inch' (expected m, mm or cm)")
    _msg(_write(p, header3="25\t25\t1\tx\tm\t25\t1\t1"), "NumMarkers is 'x', not a number")
    _msg(_write(p, header3="25\t25\t1\t2\tm\t25\t1\t1"), "header says NumMarkers=2 but line 4 names 1 markers")
    _msg(_write(p, rows=("1\t0\t1\t2",)), "line 6: 4 columns, expected 5 (Frame#, Time and X/Y/Z for 1 markers)")
    _msg(_write(p, rows=("", "1\t0\t1\t2\t3\t4")),
         "line 7: 6 columns, expected 5 (Frame#, Time and X/Y/Z for 1 markers)")
    _msg(_write(p, rows=("1\t0\t1\tabc\t3",)), "line 6: 'abc' is not a number")
    _msg(_write(p, rows=("1\t0\t1\t2\t3", "2\t\t1\t2\t3")), "line 7: the Time value is missing or not finite")
    _msg(_write(p, rows=("1\t0\t1\t2\t3", "\t", "2\t0.5\t1\t2\t3", "3\t0.5\t1\t2\t3")),
         "line 9 (Frame# 3): time 0.5 s does not increase after 0.5 s on line 8; times must increase strictly "
         "(sort the rows or fix the Time column)")
    _msg(_write(p, names="Frame#\tTime\tA\t\t\tA\t\t", header3="25\t25\t1\t2\tm\t25\t1\t1",
                sub="\t\tX1\tY1\tZ1\tX2\tY2\tZ2", rows=("1\t0\t1\t2\t3\t4\t5\t6",)), "duplicate point names: A")


def test_read_trc_space_separated_messages(tmp_path):
    p = tmp_path / "s.trc"
    p.write_text("PathFileType 4 (X/Y/Z) s.trc\nDataRate Units NumMarkers\n10 m 2\nFrame# Time left knee B\n"
                 "X1 Y1 Z1 X2 Y2 Z2\n1 0 1 2 3 4 5 6\n")
    _msg(p, "header says NumMarkers=2 but line 4 names 3 markers (the file is space-separated: marker names "
            "with spaces cannot be told apart; write it tab-separated, the TRC standard)")
    p.write_text("PathFileType 4 (X/Y/Z) s.trc\nDataRate Units NumMarkers\n10 m 1\nFrame# Time A\n"
                 "X1 Y1 Z1\n1 0 1 3\n")
    _msg(p, "line 6: 4 columns, expected 5 (Frame#, Time and X/Y/Z for 1 markers); the file is space-separated, "
            "where a missing value cannot be left empty: write NaN for it or write the file tab-separated "
            "(the TRC standard)")


# ---- edge cases found by the mutation run --------------------------------------------------------------
def test_write_trc_non_finite_rate_and_frame_with_newline(tmp_path):
    tr = Trajectories([0.0, 0.1], ["a"], np.ones((2, 1, 3)), frame="lab\nY up")
    for rate in (float("nan"), float("inf")):
        lines = write_trc(tmp_path / "n.trc", tr, rate=rate).read_text().splitlines()
        assert lines[0] == "PathFileType\t4\t(X/Y/Z)\tn.trc\tframe=lab Y up"
        assert lines[2] == "NaN\tNaN\t2\t1\tm\tNaN\t1\t2"
    assert read_trc(tmp_path / "n.trc").frame == "lab Y up"


def test_read_trc_frame_field_and_note_holding_frame(tmp_path):
    tr = Trajectories([0.0], ["a"], np.ones((1, 1, 3)), frame="camera 1")
    p = write_trc(tmp_path / "f.trc", tr, note="converted from frame=world")
    assert read_trc(p).frame == "camera 1"
    q = _write(tmp_path / "g.trc")  # no frame= field (OpenSim, Pose2Sim): OpenSim's ground
    assert read_trc(q).frame == "opensim-ground (Y up)"


def test_read_trc_header_only_and_empty_last_field(tmp_path):
    p = _write(tmp_path / "h.trc", header3="25\t25\t0\t1\tm\t25\t1\t0", rows=())
    t = read_trc(p)
    assert t.n_frames == 0 and t.names == ["A"] and t.xyz.shape == (0, 1, 3)
    q = _write(tmp_path / "e.trc", rows=("1\t0\t1\t2\t",))
    np.testing.assert_allclose(read_trc(q).xyz, [[[1, 2, np.nan]]], equal_nan=True)
    _msg(_write(tmp_path / "x.trc", rows=("1\t0\t1\t2\t3X",)), "line 6: '3X' is not a number")


def test_read_trc_warning_points_at_the_caller(tmp_path):
    p = _write(tmp_path / "w.trc", header3="25\t25\t5\t1\tm\t25\t1\t5")
    with pytest.warns(TRCWarning) as rec:
        read_trc(p)
    # stacklevel=2: the caller's line, not trc.py's (under mutmut a trampoline frame sits in between)
    assert not rec[0].filename.endswith(os.path.join("io", "trc.py"))
