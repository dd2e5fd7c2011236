"""Tests of ``simspine.io.mot`` written to kill mutmut's surviving mutants (issue 16, docs/mutation.md).

The writer is checked by its exact bytes and by OpenSim's own reader (``TimeSeriesTable``); the
reader by exact values, labels, metadata and the exact error message a user sees (file + problem).
"""

from __future__ import annotations

import numpy as np
import pytest

from simspine.errors import InputError
from simspine.io.mot import MotionTable, read_mot, write_mot

osim = pytest.importorskip("opensim")

_BOILER = [
    "",
    "Units are S.I. units (second, meters, Newtons, ...)",
    "If the header above contains a line with 'inDegrees', this indicates whether rotational "
    "values are in degrees (yes) or radians (no).",
]


def _err(excinfo) -> str:
    return str(excinfo.value)


# ---- writer: exact file, read back by OpenSim ----------------------------------------------------
def test_write_mot_exact_text_and_opensim_header(tmp_path):
    p = write_mot(tmp_path / "trial.mot", [0, 0.1, 0.2], ("hip_flexion_r", "pelvis_X"),
                  [[1.23456789012345, -2], [np.nan, 0.5], [3, 1e-7]], in_degrees=True,
                  comment="a=b\n\n   \n  EndHeader \nsecond line", meta={"subject": "S1"})
    expected = [
        "trial", "version=1", "nRows=3", "nColumns=3", "inDegrees=yes", "subject=S1",
        "frame=opensim-ground (Y up)", *_BOILER, "a:b", "second line", "", "endheader",
        "time\thip_flexion_r\tpelvis_X",
        "0\t1.23456789012\t-2",
        "0.1\tNaN\t0.5",
        "0.2\t3\t1e-07",
    ]
    assert p.read_text() == "\n".join(expected) + "\n"
    table = osim.TimeSeriesTable(str(p))
    assert table.getNumRows() == 3 and table.getNumColumns() == 2
    assert list(table.getColumnLabels()) == ["hip_flexion_r", "pelvis_X"]
    assert table.getTableMetaDataAsString("nRows") == "3"
    assert table.getTableMetaDataAsString("nColumns") == "3"
    assert table.getTableMetaDataAsString("inDegrees") == "yes"
    assert table.getTableMetaDataAsString("subject") == "S1"
    assert table.getTableMetaDataAsString("frame") == "opensim-ground (Y up)"
    # the comment holding '=' stays a comment for OpenSim, not a metadata key
    assert sorted(table.getTableMetaDataKeys()) == ["frame", "header", "inDegrees", "nColumns", "nRows",
                                                    "subject"]
    np.testing.assert_allclose(np.array(table.getIndependentColumn()), [0, 0.1, 0.2], atol=1e-12)
    np.testing.assert_allclose(table.getMatrix().to_numpy(), [[1.23456789012, -2], [np.nan, 0.5], [3, 1e-7]],
                               rtol=1e-12, equal_nan=True)
    back = read_mot(p)
    assert back.names == ["hip_flexion_r", "pelvis_X"]
    assert back.in_degrees is True
    assert back.meta == {"name": "trial", "subject": "S1", "frame": "opensim-ground (Y up)"}
    np.testing.assert_array_equal(back.time, [0, 0.1, 0.2])


def test_write_mot_radians_name_frame_and_meta_override(tmp_path):
    p = write_mot(tmp_path / "r.sto", [0.5], ["a"], [[0.25]], in_degrees=False, name="my table",
                  frame="lab", meta={"frame": "camera 0"})
    assert p.read_text().splitlines()[:6] == ["my table", "version=1", "nRows=1", "nColumns=2",
                                              "inDegrees=no", "frame=camera 0"]
    table = osim.TimeSeriesTable(str(p))
    assert table.getTableMetaDataAsString("inDegrees") == "no"
    assert table.getTableMetaDataAsString("frame") == "camera 0"
    back = read_mot(p)
    assert back.in_degrees is False and back.meta == {"name": "my table", "frame": "camera 0"}
    q = write_mot(tmp_path / "q.mot", [0.0], ["a"], [[1.0]], frame=None)
    assert not any(ln.startswith("frame") for ln in q.read_text().splitlines())
    assert read_mot(q).meta == {"name": "q"}
    assert "frame" not in list(osim.TimeSeriesTable(str(q)).getTableMetaDataKeys())


@pytest.mark.parametrize("bad", ["", "a\tb", "a\rb", "a\nb"])
def test_write_mot_rejects_bad_column_names(tmp_path, bad):
    with pytest.raises(InputError) as ei:
        write_mot(tmp_path / "n.mot", [0.0], ["ok", bad], [[1.0, 2.0]])
    assert _err(ei) == (f"{tmp_path / 'n.mot'}: column name {bad!r} cannot be written "
                        "(empty or has tabs/newlines)")
    assert not (tmp_path / "n.mot").exists()


@pytest.mark.parametrize("meta, key", [({"a=b": 1}, "a=b"), ({"a\nb": 1}, "a\nb"), ({"k": "x\ny"}, "k")])
def test_write_mot_rejects_bad_metadata(tmp_path, meta, key):
    with pytest.raises(InputError) as ei:
        write_mot(tmp_path / "m.mot", [0.0], ["a"], [[1.0]], meta=meta)
    assert _err(ei) == f"{tmp_path / 'm.mot'}: metadata entry {key!r} cannot be written as key=value"


def test_write_mot_rejects_metadata_value_with_equals(tmp_path):
    """OpenSim's reader splits ``key=x=1`` at the last '=' (key ``key=x``): such a value is refused."""
    with pytest.raises(InputError) as ei:
        write_mot(tmp_path / "e.mot", [0.0], ["a"], [[1.0]], meta={"expr": "x=1"})
    assert _err(ei) == f"{tmp_path / 'e.mot'}: metadata entry 'expr' cannot be written as key=value"
    with pytest.raises(InputError):
        write_mot(tmp_path / "f.mot", [0.0], ["a"], [[1.0]], frame="a=b")
    ok = write_mot(tmp_path / "g.mot", [0.0], ["a"], [[1.0]], meta={"n": 3}, frame=None)
    assert read_mot(ok).meta == {"name": "g", "n": "3"}
    assert osim.TimeSeriesTable(str(ok)).getTableMetaDataAsString("n") == "3"


# ---- MotionTable -----------------------------------------------------------------------------------
def test_motion_table_coerces_and_reshapes():
    t = MotionTable([[0], [1]], ("a",), [1, 2])
    assert t.time.shape == (2,) and t.time.dtype == np.float64
    assert t.values.shape == (2, 1) and t.values.dtype == np.float64
    assert t.names == ["a"] and isinstance(t.names, list)
    np.testing.assert_array_equal(t.values[:, 0], [1.0, 2.0])
    np.testing.assert_array_equal(t.column("a"), [1.0, 2.0])
    assert t.in_degrees is True and t.meta == {}
    u = MotionTable(np.arange(3), ["x", "y"], np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(u.column("y"), [1, 3, 5])
    np.testing.assert_array_equal(u.column("x"), [0, 2, 4])


def test_motion_table_errors():
    with pytest.raises(InputError) as ei:
        MotionTable([0, 1], ["a", "b"], [1, 2])
    assert _err(ei) == "values shape (2,) does not match (2 times, 2 names)"
    with pytest.raises(InputError) as ei:
        MotionTable([0], ["a", "b"], [1, 2])
    assert _err(ei) == "values shape (2,) does not match (1 times, 2 names)"
    with pytest.raises(InputError) as ei:
        MotionTable([0, 1, 2], ["a"], [[1], [2]])
    assert _err(ei) == "values shape (2, 1) does not match (3 times, 1 names)"
    with pytest.raises(InputError) as ei:
        MotionTable([0], ["a"], [[1]]).column("b")
    assert _err(ei) == "no column 'b'"


# ---- reader: hand-written files --------------------------------------------------------------------
def test_read_mot_header_parsing(tmp_path):
    p = tmp_path / "h.mot"
    p.write_text("  trial 1  \nversion=1\nnRows=2\nnColumns=3\n  key  =  a = b  \ninDegrees=YES\n"
                 "free text\nlast=one\n  EndHeader  \n\ntime\tpelvis_X\tb\t\n\n0\t1\t2\n0.5\t\t4\t\n")
    t = read_mot(p)
    assert t.meta == {"name": "trial 1", "key": "a = b", "last": "one"}
    assert t.in_degrees is True
    assert t.names == ["pelvis_X", "b"]
    np.testing.assert_array_equal(t.time, [0, 0.5])
    np.testing.assert_array_equal(t.values, [[1, 2], [np.nan, 4]])


def test_read_mot_time_label_case_and_whitespace_values(tmp_path):
    p = tmp_path / "c.mot"
    p.write_text("n\nendheader\nTime\ta\tb\n0\t \t2\r\n1\t3\t\n")
    t = read_mot(p)
    assert t.names == ["a", "b"] and t.in_degrees is False and t.meta == {"name": "n"}
    np.testing.assert_array_equal(t.values, [[np.nan, 2], [3, np.nan]])


@pytest.mark.parametrize("text, name", [
    ("endheader\ntime\ta\n0\t1\n", ""),
    ("myname\nendheader\ntime\ta\n0\t1\n", "myname"),
    ("version=1\nendheader\ntime\ta\n0\t1\n", ""),
])
def test_read_mot_name_line(tmp_path, text, name):
    p = tmp_path / "x.mot"
    p.write_text(text)
    t = read_mot(p)
    assert t.meta == {"name": name}
    np.testing.assert_array_equal(t.values, [[1.0]])


def test_read_mot_no_rows_and_bad_utf8(tmp_path):
    p = tmp_path / "e.mot"
    p.write_bytes(b"caf\xe9 \xff\nendheader\ntime\ta\tb\n")
    t = read_mot(p)
    assert t.time.shape == (0,) and t.values.shape == (0, 2) and t.names == ["a", "b"]
    assert t.meta == {"name": "caf\ufffd \ufffd"}
    q = tmp_path / "u.mot"
    q.write_bytes("h\u00e9\nendheader\ntime\t\u00e9l\u00e9ment\n0\t1\n".encode())
    u = read_mot(q)
    assert u.names == ["\u00e9l\u00e9ment"] and u.meta == {"name": "h\u00e9"}


def test_read_mot_labels_with_spaces_and_trailing_tabs(tmp_path):
    p = tmp_path / "s.mot"
    p.write_text("n\nendheader\ntime\thip flexion\tb\n0\t1\t2\t\t\n")
    t = read_mot(p)
    assert t.names == ["hip flexion", "b"]
    np.testing.assert_array_equal(t.values, [[1, 2]])


# ---- reader: errors name the file, the line and the problem ------------------------------------------
def test_read_mot_missing_file(tmp_path):
    p = tmp_path / "nope.mot"
    with pytest.raises(InputError) as ei:
        read_mot(p)
    assert _err(ei) == f"{p}: cannot read motion file: No such file or directory"


@pytest.mark.parametrize("text, problem", [
    ("n\nversion=1\ntime\ta\n0\t1\n", "no 'endheader' line: not an OpenSim .mot/.sto file"),
    ("n\nendheader\n\n  \n", "no column labels after 'endheader'"),
    ("n\nendheader\n\nt\ta\n0\t1\n", "line 4: first column is ['t'], expected 'time'"),
    ("n\nendheader\ntime\ta\tb\n0\t1\t2\n\n1\t2\n", "line 6: 2 columns, expected 3"),
    ("n\nendheader\ntime\ta\tb\n0\t1\t2\t3\n", "line 4: 4 columns, expected 3"),
    ("n\nendheader\ntime\ta\n0\t1\n", None),
    ("n\nendheader\ntime\ta\n0\t\t5\n", "line 4: 3 columns, expected 2"),
    ("n\nendheader\ntime\ta\n0\t1X\n", "line 4: '1X' is not a number"),
    ("n\nendheader\ntime\ta\tb\tc\n0\t1\t\tabc\n", "line 4: 'abc' is not a number"),
    ("n\nendheader\ntime\ta\n0\t1\n\n1\t1,5\n", "line 6: '1,5' is not a number"),
])
def test_read_mot_error_messages(tmp_path, text, problem):
    p = tmp_path / "bad.mot"
    p.write_text(text)
    if problem is None:
        read_mot(p)
        return
    with pytest.raises(InputError) as ei:
        read_mot(p)
    assert _err(ei) == f"{p}: {problem}"
    assert ei.value.source == str(p) and ei.value.problem == problem


def test_read_opensim_written_sto_round_trip(tmp_path):
    """A file written by OpenSim's ``STOFileAdapter`` reads back with the same labels and metadata."""
    table = osim.TimeSeriesTable()
    table.setColumnLabels(["a_X", "b"])
    for i, t in enumerate([0.0, 0.01, 0.02]):
        row = osim.RowVector(2)
        row[0], row[1] = 1.5 * i, -0.25 * i
        table.appendRow(t, row)
    table.addTableMetaDataString("inDegrees", "no")
    table.addTableMetaDataString("frame", "ground")
    osim.STOFileAdapter.write(table, str(tmp_path / "os.sto"))
    back = read_mot(tmp_path / "os.sto")
    assert back.names == ["a_X", "b"] and back.in_degrees is False
    assert back.meta["frame"] == "ground"
    assert not {"version", "nRows", "nColumns", "inDegrees"} & set(back.meta)
    np.testing.assert_allclose(back.time, [0.0, 0.01, 0.02])
    np.testing.assert_allclose(back.values, [[0, 0], [1.5, -0.25], [3.0, -0.5]])
