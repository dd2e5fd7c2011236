"""Shared fixtures: the prepared spine model and its OpenSim kinematics, one per test module (each
module prepares the model into its own cache folder, so no module sees another's files)."""

import pytest


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> str:
    """Path (str) of the prepared model, in a cache folder of this module's own."""
    from simspine.biomech.model import prepare_model

    return str(prepare_model(cache_dir=tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def kin(model_path):
    """OpenSim kinematics (:class:`simspine.biomech.fk.Kinematics`) of :func:`model_path`."""
    from simspine.biomech.fk import Kinematics

    return Kinematics(str(model_path))
