"""TRC marker files as OpenSim reads them (``TRCFileAdapter``, ``TimeSeriesTableVec3``, the GUI).

Layout written (tab separated)::

    PathFileType  4  (X/Y/Z)  <file name>  frame=<world frame>
    DataRate  CameraRate  NumFrames  NumMarkers  Units  OrigDataRate  OrigDataStartFrame  OrigNumFrames
    <rate>    <rate>      <T>        <M>         m      <rate>        1                   <T>
    Frame#  Time  <name1>      <name2> ...
                  X1  Y1  Z1   X2  Y2  Z2 ...
    1  0.0  x y z  x y z ...

Missing markers are written as ``NaN``, which OpenSim reads as a missing marker. The world frame is
stated in the fifth field of the first line (OpenSim keeps that line as the ``header`` metadata and
otherwise ignores it). Pose2Sim writes the same layout (without the frame field).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import write_text_atomic
from simspine.trajectories import Trajectories

DEFAULT_FRAME = "opensim-ground (Y up)"
_UNIT_SCALE = {"m": 1.0, "mm": 1e-3, "cm": 1e-2}  # file units -> metres
_HEADER_KEYS = ("DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
                "OrigDataStartFrame", "OrigNumFrames")


def _fmt(v: float) -> str:
    # 10 significant digits: 0.1 um at 1 km, far below any marker precision; NaN as OpenSim expects.
    return "NaN" if not np.isfinite(v) else f"{v:.10g}"


def write_trc(path: str | os.PathLike, traj: Trajectories, units: str = "m", rate: float | None = None,
              note: str | None = None) -> Path:
    """Write ``traj`` (positions in metres) to a TRC file, atomically.

    Args:
        path: output ``.trc`` path.
        traj: trajectories; ``traj.frame`` is recorded in the header. Confidences are not stored
            (TRC has no field for them); missing points (NaN) are written as ``NaN``.
        units: ``"m"`` (default, what OpenSim models use) or ``"mm"``/``"cm"``; values are scaled.
        rate: DataRate in Hz; defaults to the rate of ``traj.time`` (1 Hz for a single frame).
        note: one line of text added to the first line as a ``note=...`` field after the frame
            (OpenSim keeps that line as the ``header`` metadata; tabs and newlines become spaces).
    Returns:
        the path written.
    """
    if units not in _UNIT_SCALE:
        raise InputError(path, f"unsupported TRC units {units!r} (use one of {sorted(_UNIT_SCALE)})")
    for n in traj.names:
        if not n or any(c in n for c in "\t\r\n"):
            raise InputError(path, f"marker name {n!r} cannot be written to a TRC file (empty or has tabs/newlines)")
    T, M = traj.n_frames, len(traj.names)
    if rate is None:
        rate = traj.rate if T > 1 else 1.0
    frame = traj.frame.replace("\t", " ").replace("\n", " ")
    rate_s = _fmt(float(rate))
    first = f"PathFileType\t4\t(X/Y/Z)\t{Path(path).name}\tframe={frame}"
    if note:
        first += "\tnote=" + " ".join(note.split())
    lines = [
        first,
        "\t".join(_HEADER_KEYS),
        "\t".join([rate_s, rate_s, str(T), str(M), units, rate_s, "1", str(T)]),
        "Frame#\tTime\t" + "\t\t\t".join(traj.names) + "\t\t",
        "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(M)),
    ]
    xyz = traj.xyz.reshape(T, M * 3) / _UNIT_SCALE[units]
    # one %-format per row is several times faster than formatting value by value; numbers never
    # contain the letters "nan", so the replace only turns Python's 'nan' into OpenSim's 'NaN'.
    row_fmt = "%d\t%.10g" + "\t%.10g" * (M * 3)
    for f in range(T):
        lines.append((row_fmt % (f + 1, traj.time[f], *xyz[f])).replace("nan", "NaN"))
    return write_text_atomic(path, "\n".join(lines) + "\n")


def _float(tok: str, path, lineno: int) -> float:
    tok = tok.strip()
    if tok == "":
        return float("nan")  # OpenSim also treats an empty field as a missing marker
    try:
        return float(tok)
    except ValueError:
        raise InputError(path, f"line {lineno}: {tok!r} is not a number") from None


class TRCWarning(UserWarning):
    """A TRC file that is read but has something the user should know about (named in the text)."""


def _delimiter(lines: list[str]) -> str:
    """``"\t"`` (the TRC standard), ``","`` or ``" "`` (any run of spaces), from header lines 2 and 4."""
    head = lines[1] + lines[3]
    if "\t" in head:
        return "\t"
    if "," in head:
        return ","
    return " "


def _split(line: str, delim: str) -> list[str]:
    return line.split() if delim == " " else line.rstrip("\r\n").split(delim)


def read_trc(path: str | os.PathLike) -> Trajectories:
    """Read a TRC file into :class:`Trajectories` (positions converted to metres).

    The world frame is taken from a ``frame=...`` field on the first line (written by
    :func:`write_trc`); files without one (OpenSim, Pose2Sim) are taken to be in OpenSim's ground
    frame, Y up. Empty fields and ``NaN`` become NaN (confidence 0). Header facts are kept in
    ``traj.meta`` (``DataRate``, ``Units``, ..., ``delimiter``, ``warnings``).

    Fields are tab-separated in the standard (and what OpenSim reads); comma-separated files are
    read the same way, and files separated by spaces are read when every row has exactly the
    expected count of values (a missing value there cannot be an empty field, so a row with fewer
    values is refused with a message that says so). A ``NumFrames`` header that disagrees with the
    data rows gives a :class:`TRCWarning` (also listed in ``traj.meta['warnings']``) and the rows
    are used: the rows are the data, OpenSim reads them and ignores the count, and hand-trimmed
    files often keep a stale count; fewer rows than declared may also mean a truncated copy,
    which the warning says.

    Raises:
        InputError: unreadable file, missing header lines, unknown units, a data row whose
            column count differs from ``2 + 3 * NumMarkers``, a non-numeric value, or times that
            do not increase strictly (the file and the first bad row are named).
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(path, f"cannot read TRC file: {e.strerror or e}") from None
    lines = text.splitlines()
    if len(lines) < 5 or not lines[0].startswith("PathFileType"):
        raise InputError(path, "not a TRC file (expected a 'PathFileType' line and 4 more header lines)")
    delim = _delimiter(lines)
    delim_name = {"\t": "tab", ",": "comma", " ": "space"}[delim]
    keys = [k.strip() for k in _split(lines[1], delim)]
    vals = [v.strip() for v in _split(lines[2], delim)]
    meta = dict(zip(keys, vals, strict=False))
    units = meta.get("Units", "m")
    if units not in _UNIT_SCALE:
        raise InputError(path, f"unsupported units {units!r} (expected m, mm or cm)")
    if delim == " ":
        names = lines[3].split()[2:]  # no empty fields between names when spaces separate them
    else:
        names = [n.strip() for n in _split(lines[3], delim)[2::3]]
        names = [n for n in names if n]
    if "NumMarkers" in meta:
        try:
            n_declared = int(float(meta["NumMarkers"]))
        except ValueError:
            raise InputError(path, f"NumMarkers is {meta['NumMarkers']!r}, not a number") from None
        if n_declared != len(names):
            raise InputError(path, f"header says NumMarkers={n_declared} but line 4 names {len(names)} markers"
                             + (" (the file is space-separated: marker names with spaces cannot be told apart; "
                                "write it tab-separated, the TRC standard)" if delim == " " else ""))
    frame = DEFAULT_FRAME
    at = lines[0].find("frame=")
    if at >= 0:
        frame = lines[0][at + len("frame="):].split("\t")[0].strip() or DEFAULT_FRAME
    M = len(names)
    ncol = 2 + 3 * M
    rows, row_lines = [], []
    for i, line in enumerate(lines[5:], start=6):
        if not line.strip():
            continue
        toks = _split(line, delim)
        # Some writers end rows with a tab: drop empty fields beyond the expected count only.
        while len(toks) > ncol and toks[-1].strip() == "":
            toks.pop()
        if len(toks) != ncol:
            hint = (f"; the file is {delim_name}-separated, where a missing value cannot be left empty: "
                    "write NaN for it or write the file tab-separated (the TRC standard)") if delim == " " else ""
            raise InputError(path, f"line {i}: {len(toks)} columns, expected {ncol} "
                                   f"(Frame#, Time and X/Y/Z for {M} markers){hint}")
        rows.append([_float(t, path, i) for t in toks])
        row_lines.append(i)
    data = np.array(rows, dtype=float).reshape(len(rows), ncol)
    time = data[:, 1]
    if np.any(~np.isfinite(time)):
        i = int(np.flatnonzero(~np.isfinite(time))[0])
        raise InputError(path, f"line {row_lines[i]}: the Time value is missing or not finite")
    bad = np.flatnonzero(np.diff(time) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(path, f"line {row_lines[i]} (Frame# {data[i, 0]:g}): time {time[i]:g} s does not increase "
                               f"after {time[i - 1]:g} s on line {row_lines[i - 1]}; times must increase strictly "
                               "(sort the rows or fix the Time column)")
    warns = []
    if "NumFrames" in meta:
        try:
            n_frames = int(float(meta["NumFrames"]))
        except ValueError:
            n_frames = None
            warns.append(f"NumFrames is {meta['NumFrames']!r}, not a number; {len(rows)} data rows used")
        if n_frames is not None and n_frames != len(rows):
            more = ("fewer rows than declared: the file may be truncated" if len(rows) < n_frames
                    else "more rows than declared")
            warns.append(f"header says NumFrames={n_frames} but the file has {len(rows)} data rows ({more}); "
                         f"the {len(rows)} rows are used")
    for w in warns:
        warnings.warn(f"{path}: {w}", TRCWarning, stacklevel=2)
    xyz = data[:, 2:].reshape(len(rows), M, 3) * _UNIT_SCALE[units]
    meta = {k: v for k, v in meta.items() if k}
    meta["header"] = lines[0]
    meta["delimiter"] = delim_name
    if warns:
        meta["warnings"] = warns
    try:
        return Trajectories(time, names, xyz, frame=frame, meta=meta)
    except InputError as e:
        raise InputError(path, e.problem) from None
