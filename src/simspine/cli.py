"""The ``simspine`` command line: a thin layer over the Python API.

Each subcommand lives in its own module under :mod:`simspine.commands` and exposes ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; they are discovered here, so adding a
command never touches this file.

User errors end in one line on stderr and a non-zero exit: a bad option value or usage (argparse,
exit 2, no usage block), a :class:`~simspine.errors.SimspineError` (exit 2) and an
:class:`OSError` such as a full disk, a denied permission or a file where a folder should be
(exit 1, naming the path and what to do). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from simspine import __version__
from simspine.errors import SimspineError


def _command_modules():
    import simspine.commands as pkg

    mods = [importlib.import_module(f"simspine.commands.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: m.NAME)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``PROG: error: MESSAGE (see PROG --help)``.

    Subcommand parsers are made with the same class (argparse's default for subparsers).
    """

    def error(self, message: str):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simspine",
        allow_abbrev=False,
        description="Anatomically valid 3D spine motion from multi-view video (SimSpine). "
                    "Units: metres and seconds; model-space output in OpenSim's ground frame (Y up).",
    )
    parser.add_argument("--version", action="version", version=f"simspine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           allow_abbrev=False)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except SimspineError as exc:
        print(f"simspine {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # full disk, permission denied, a file where a folder should be, ...
        from simspine.fileio import describe_os_error

        print(f"simspine {args.command}: error: {_one_line(describe_os_error(exc, action='accessing'))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"simspine {args.command}: interrupted; finished outputs are kept, run again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
