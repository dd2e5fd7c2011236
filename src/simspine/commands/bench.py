"""``simspine bench NAME``: benchmarks that print simspine next to a peer, with ratios.

Each benchmark is a module in :mod:`simspine.bench` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Every benchmark takes ``--json FILE``: one that
does not define it gets it here, and its ``run`` leaves its figures in ``args.figures`` (any
JSON-serialisable value; numpy scalars and arrays are converted), which is written after it returns.
"""

from __future__ import annotations

import importlib
import pkgutil

NAME = "bench"
HELP = "benchmarks: simspine next to its peers, measured in the same run"


def _benchmarks():
    import simspine.bench as pkg

    mods = [importlib.import_module(f"simspine.bench.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: m.NAME)


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for mod in _benchmarks():
        # no abbreviations: "--out" must not silently mean "--outliers"
        bp = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                            allow_abbrev=False)
        mod.add_arguments(bp)
        bp.set_defaults(_bench_run=mod.run)
        if not any("--json" in a.option_strings for a in bp._actions):
            bp.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON")
            bp.set_defaults(_bench_json=True)




def run(args) -> int:
    rc = int(args._bench_run(args) or 0)
    if getattr(args, "_bench_json", False) and args.json:
        import json
        from pathlib import Path

        from simspine.errors import InputError
        from simspine.fileio import json_default, write_text_atomic

        figures = getattr(args, "figures", None)
        if figures is None:
            raise InputError(args.json, f"bench {args.benchmark} left no figures to write")
        write_text_atomic(Path(args.json), json.dumps({"benchmark": args.benchmark, "figures": figures}, indent=1,
                                                      default=json_default) + "\n")
        print(f"\nwrote {args.json}")
    return rc
