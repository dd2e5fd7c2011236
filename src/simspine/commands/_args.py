"""Value checks for command-line options, used as argparse ``type=``.

A value out of range becomes argparse's one-line usage error (exit 2) naming the option, e.g.
``simspine triangulate: error: argument --fps: must be a number > 0, got '-5'``, before any
work starts. This module has no ``NAME``: it is not a subcommand.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _check(ok: bool, rule: str, text: str) -> None:
    if not ok:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")


def positive_float(text: str) -> float:
    """A finite number > 0 (frame rates, masses, heights, pixel thresholds, durations)."""
    v = _number(text)
    _check(v > 0, "a number > 0", text)
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (noise levels, weights; 0 often means "off")."""
    v = _number(text)
    _check(v >= 0, "a number >= 0", text)
    return v


def fraction(text: str) -> float:
    """A share or probability in [0, 1]."""
    v = _number(text)
    _check(0 <= v <= 1, "a fraction between 0 and 1", text)
    return v


def fraction_below_one(text: str) -> float:
    """A relative spread in [0, 1) (1 would allow zero-length segments)."""
    v = _number(text)
    _check(0 <= v < 1, "a fraction >= 0 and < 1", text)
    return v


def positive_int(text: str) -> int:
    """An integer >= 1 (frame counts, filter orders)."""
    v = _number(text, int)
    _check(v >= 1, "an integer >= 1", text)
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0 (gap lengths in frames)."""
    v = _number(text, int)
    _check(v >= 0, "an integer >= 0", text)
    return v
