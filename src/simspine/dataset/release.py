"""Facts of the official SimSpine release's layout (package data ``simspine_release.json``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

from simspine.skeletons import spinetrack37


@cache
def release_facts() -> dict:
    """The release's layout facts, with the line saying where they come from (``source``)."""
    return json.loads(resources.files("simspine.data").joinpath("simspine_release.json").read_text("utf-8"))


def kinematic_axes() -> list[str]:
    """The 62 model coordinates of ``metadata/kinematic_axes``, in the release's order."""
    return list(release_facts()["kinematic_axes"])


def markers_names() -> list[str]:
    """The 15 names of ``metadata/markers_names`` (spine, head and shoulder-girdle points)."""
    return list(release_facts()["markers_names"])


def markers_parents() -> list[int]:
    """Parent index of each of the 15 markers (-1 for the root, Hip)."""
    return list(release_facts()["markers_parents"])


def marker_indices() -> np.ndarray:
    """SpineTrack-37 index of each of the 15 release markers, in the release's order."""
    return spinetrack37().indices(markers_names())
