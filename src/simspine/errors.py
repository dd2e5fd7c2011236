"""Errors that users see: each names the file (or object) and what is wrong with it."""

from __future__ import annotations

import os


class SimspineError(Exception):
    """Base class of every error simspine raises on purpose."""


class InputError(SimspineError, ValueError):
    """Bad user input: a file, calibration or array that cannot be used as given.

    ``InputError(path, problem)`` renders as ``"<path>: <problem>"`` so that the CLI can print it
    without a traceback.
    """

    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(problem if source is None else f"{self.source}: {problem}")
