"""Crash-safe file writing: write to a temporary name in the same folder, then rename.

A reader never sees a half-written output, and an interrupted run leaves either the old file or
the new one, never a truncated one. A failed write (full disk, permission denied, a file where a
folder should be) removes its temporary file and raises :class:`OutputError`, which names the
destination and what to do in one line; :func:`ensure_out_dir` checks an output folder before any
long work starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from simspine.errors import InputError, SimspineError


class OutputError(SimspineError, OSError):
    """An output could not be written: ``errno`` and ``filename`` as in :class:`OSError`, and a
    one-line message naming the destination and what the user can do (:func:`describe_os_error`)."""

    def __init__(self, path: str | os.PathLike, err: OSError):
        super().__init__(err.errno, err.strerror or str(err), str(path))
        self.message = describe_os_error(err, path)

    def __str__(self) -> str:
        return self.message


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM}


def describe_os_error(err: OSError, path: str | os.PathLike | None = None, action: str = "writing") -> str:
    """One line for a failed file operation: what went wrong at which path and what to do.

    ``path`` defaults to the error's own file name. ``action`` is the verb shown ("writing",
    "creating"; "accessing" when it is not known whether the file was read or written).
    """
    if isinstance(err, OutputError):
        return err.message
    where = path if path is not None else (err.filename or "an output file")
    code = err.errno
    if code in _NO_SPACE:
        return f"no space left on device writing {where}; free space or choose another --out"
    if code in _DENIED:
        what = "choose a folder you can write to with --out" if action != "accessing" else \
            "check its permissions, or choose another --out for outputs"
        return f"permission denied {action} {where}; {what}"
    if code == errno.EROFS:
        return f"read-only file system {action} {where}; choose a writable folder with --out"
    if code == errno.ENOTDIR:
        return f"{where}: a part of this path is a file, not a folder; choose another --out"
    if code == errno.EISDIR:
        return f"{where} is a folder, not a file; choose another path"
    if code == errno.ENOENT:
        return f"{where}: no such file or folder"
    reason = (err.strerror or str(err)).strip().replace("\n", " ")
    return f"{action} {where} failed: {reason}"


def ensure_out_dir(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (and its parents) and check that files can be written in it.

    Raises :class:`InputError` naming ``path`` when it is an existing file, when a part of it is a
    file, when it cannot be created or written to, or when the disk is full. Call it at the start
    of a command, before any long work.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is a file, not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".simspine-write-check.", dir=out)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.EEXIST):
            raise InputError(out, "a part of this path is a file, not a folder; choose another --out") from None
        raise InputError(None, describe_os_error(e, out, "creating")) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    ``suffix`` defaults to the suffix of ``path`` so that libraries which infer the format from
    the extension (OpenSim, numpy, h5py) write the right thing.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                                   dir=path.parent)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(path, e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give the output the permissions a plain open() would.
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as e:
        # never leave a half-written temporary file behind (a full disk included)
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(e, OSError) and not isinstance(e, OutputError) and _about_this_write(e, tmp_path, path):
            raise OutputError(path, e) from e
        raise


def _about_this_write(err: OSError, tmp: Path, path: Path) -> bool:
    """Whether ``err``, raised while an output was being written, is about that output (it names
    the temporary or final file or no file, or the disk is full) rather than, say, an input read
    at the same time."""
    if err.errno in _NO_SPACE or err.filename is None:
        return True
    return os.fspath(err.filename) in (str(tmp), str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def json_default(v):
    """``json.dumps(default=...)`` for the package's records: numpy scalars as Python numbers,
    arrays as lists, anything else (paths, enums) as its string."""
    import numpy as np

    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
