"""Motion (``.mot``) and storage (``.sto``) tables as OpenSim reads them (``TimeSeriesTable``,
``STOFileAdapter``, the GUI, the IK/Analyze tools).

Layout written (tab separated)::

    <table name>
    version=1
    nRows=<T>
    nColumns=<N + 1>
    inDegrees=yes|no
    frame=<world frame>          (and any other key=value metadata)
    <comment lines>
    endheader
    time  <name1>  <name2> ...
    0.0   v        v ...

OpenSim keeps every ``key=value`` header line as table metadata and ignores free text lines.
Missing values are written as ``NaN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.fileio import write_text_atomic


@dataclass
class MotionTable:
    """A time series of named scalar columns.

    Attributes:
        time: (T,) seconds.
        names: N column labels (OpenSim coordinate names for IK output).
        values: (T, N); rotational coordinates in degrees when ``in_degrees`` else radians,
            translations in metres.
        in_degrees: the header's ``inDegrees`` flag.
        meta: other ``key=value`` header entries (e.g. ``frame``), and ``name`` (first line).
    """

    time: np.ndarray
    names: list[str]
    values: np.ndarray
    in_degrees: bool = True
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=float).reshape(-1)
        self.values = np.asarray(self.values, dtype=float)
        self.names = list(self.names)
        if self.values.ndim == 1 and len(self.names) == 1:
            self.values = self.values[:, None]
        if self.values.shape != (self.time.size, len(self.names)):
            raise InputError(None, f"values shape {self.values.shape} does not match "
                                   f"({self.time.size} times, {len(self.names)} names)")

    def column(self, name: str) -> np.ndarray:
        """(T,) values of one column."""
        if name not in self.names:
            raise InputError(None, f"no column {name!r}")
        return self.values[:, self.names.index(name)]


def write_mot(path: str | os.PathLike, time, names, values, in_degrees: bool = True, comment: str = "",
              name: str | None = None, frame: str | None = "opensim-ground (Y up)",
              meta: dict | None = None) -> Path:
    """Write a ``.mot``/``.sto`` table atomically.

    Args:
        path: output path (``.mot`` or ``.sto``; the content is the same).
        time: (T,) seconds.
        names: N column labels (no tabs or newlines).
        values: (T, N) values.
        in_degrees: sets ``inDegrees`` (whether rotational values are degrees).
        comment: free text lines placed in the header (OpenSim ignores them).
        name: first header line; defaults to the file stem.
        frame: world frame the values refer to, written as ``frame=...`` (None to omit).
        meta: more ``key=value`` header entries.
    Returns:
        the path written.
    """
    table = MotionTable(time, names, values, in_degrees)
    for n in table.names:
        if not n or any(c in n for c in "\t\r\n"):
            raise InputError(path, f"column name {n!r} cannot be written (empty or has tabs/newlines)")
    T, N = table.values.shape
    header = [name or Path(path).stem, "version=1", f"nRows={T}", f"nColumns={N + 1}",
              f"inDegrees={'yes' if in_degrees else 'no'}"]
    extra = dict(meta or {})
    if frame is not None:
        extra.setdefault("frame", frame)
    for k, v in extra.items():
        # OpenSim splits a header line at its last '=': a value holding '=' would change the key.
        if "=" in str(k) + str(v) or "\n" in str(k) + str(v):
            raise InputError(path, f"metadata entry {k!r} cannot be written as key=value")
        header.append(f"{k}={v}")
    header += ["", "Units are S.I. units (second, meters, Newtons, ...)",
               "If the header above contains a line with 'inDegrees', this indicates whether rotational "
               "values are in degrees (yes) or radians (no)."]
    # '=' would turn a comment into metadata for OpenSim, and 'endheader' would end the header early.
    header += [ln.replace("=", ":") for ln in comment.splitlines() if ln.strip() and ln.strip().lower() != "endheader"]
    header += ["", "endheader", "time\t" + "\t".join(table.names)]
    row_fmt = "\t".join(["%.12g"] * (N + 1))  # 12 significant digits; 'nan' -> OpenSim's 'NaN'
    rows = [(row_fmt % (t, *row)).replace("nan", "NaN") for t, row in zip(table.time, table.values, strict=True)]
    return write_text_atomic(path, "\n".join(header + rows) + "\n")


def read_mot(path: str | os.PathLike) -> MotionTable:
    """Read a ``.mot``/``.sto`` table (OpenSim 4 format, with or without ``version``).

    Raises:
        InputError: unreadable file, no ``endheader`` line, first column not ``time``, a row with
            a different number of columns than the labels, or a non-numeric value.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(path, f"cannot read motion file: {e.strerror or e}") from None
    lines = text.splitlines()
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    except StopIteration:
        raise InputError(path, "no 'endheader' line: not an OpenSim .mot/.sto file") from None
    meta: dict = {"name": lines[0].strip() if end > 0 and "=" not in lines[0] else ""}
    for ln in lines[:end]:
        if "=" in ln:
            k, v = ln.split("=", 1)
            meta[k.strip()] = v.strip()
    in_degrees = meta.pop("inDegrees", "no").lower() == "yes"
    body = [(i + 1, ln) for i, ln in enumerate(lines[end + 1:], start=end + 1) if ln.strip()]
    if not body:
        raise InputError(path, "no column labels after 'endheader'")
    labels = [s.strip() for s in body[0][1].rstrip("\r\n").split("\t")]
    while labels and labels[-1] == "":
        labels.pop()
    if not labels or labels[0].lower() != "time":
        raise InputError(path, f"line {body[0][0]}: first column is {labels[:1]!r}, expected 'time'")
    ncol = len(labels)
    rows = []
    for lineno, ln in body[1:]:
        toks = ln.rstrip("\r\n").split("\t")
        while len(toks) > ncol and toks[-1].strip() == "":
            toks.pop()
        if len(toks) != ncol:
            raise InputError(path, f"line {lineno}: {len(toks)} columns, expected {ncol}")
        try:
            rows.append([float(t) if t.strip() else np.nan for t in toks])
        except ValueError:
            bad = next(t for t in toks if t.strip() and not _isfloat(t))
            raise InputError(path, f"line {lineno}: {bad!r} is not a number") from None
    data = np.array(rows, dtype=float).reshape(len(rows), ncol)
    for k in ("version", "nRows", "nColumns"):
        meta.pop(k, None)
    return MotionTable(data[:, 0], labels[1:], data[:, 1:], in_degrees, meta)


def _isfloat(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
