"""``simspine bench NAME``: benchmarks that print simspine next to a peer, with ratios.

Each benchmark is a module in :mod:`simspine.bench` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.
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


def run(args) -> int:
    return int(args._bench_run(args) or 0)
