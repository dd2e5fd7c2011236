"""Human3.6M readers and the release's layout facts (no Dask, no IK)."""

from __future__ import annotations

import numpy as np
import pytest

from simspine.dataset.h36m import (
    D3_DIR,
    find_sequences,
    parse_sequence_name,
    read_cdf_pose,
    split_of,
    write_cdf_pose,
)
from simspine.dataset.release import kinematic_axes, marker_indices, markers_names
from simspine.errors import InputError


def test_action_names_match_whole_words():
    assert parse_sequence_name("TakingPhoto 1") == ("Photo", "1")
    assert parse_sequence_name("WalkingDog") == ("WalkDog", "")
    assert parse_sequence_name("Sitting 2") == ("Sitting", "2")
    assert parse_sequence_name("SittingDown") == ("SittingDown", "")
    assert parse_sequence_name("WalkTogether 1") == ("WalkTogether", "1")
    assert parse_sequence_name("Walking") == ("Walking", "")
    with pytest.raises(InputError, match="not a Human3.6M action"):
        parse_sequence_name("Walk")
    with pytest.raises(InputError):
        parse_sequence_name("Sittin 1")


def test_splits():
    assert [split_of(s) for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")] == ["train"] * 5 + ["test"] * 2


def _tree(root, files):
    for s, names in files.items():
        d = root.joinpath(s, *D3_DIR)
        d.mkdir(parents=True)
        for n in names:
            write_cdf_pose(d / f"{n}.cdf", np.zeros((3, 32, 3)))


def test_find_sequences_exact_matching(tmp_path):
    _tree(tmp_path, {"S1": ["Sitting 1", "SittingDown", "TakingPhoto", "WalkingDog 1", "Walking 1"],
                     "S9": ["WalkDog", "WalkTogether 1", "Walking"]})
    seqs = find_sequences(tmp_path, actions=["Sitting"]).sequences
    assert [q.uid for q in seqs] == ["S1/Sitting_1"]
    seqs = find_sequences(tmp_path, actions=["Walking"]).sequences
    assert sorted(q.uid for q in seqs) == ["S1/Walking_1", "S9/Walking"]
    seqs = find_sequences(tmp_path, actions=["WalkDog", "Photo"]).sequences
    assert sorted(q.uid for q in seqs) == ["S1/Photo", "S1/WalkDog_1", "S9/WalkDog"]
    assert {q.original_name for q in seqs} == {"TakingPhoto", "WalkingDog 1", "WalkDog"}
    listing = find_sequences(tmp_path, subjects=["S1", "S5"])
    assert "S5" in listing.problems and "subject folder not found" in listing.problems["S5"]
    assert len(listing.sequences) == 5


def test_cdf_round_trip_and_truncated(tmp_path):
    j = np.random.default_rng(0).normal(size=(7, 32, 3)) * 500
    p = write_cdf_pose(tmp_path / "Eating.cdf", j)
    np.testing.assert_allclose(read_cdf_pose(p), j)
    data = p.read_bytes()
    bad = tmp_path / "Eating 2.cdf"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="Eating 2.cdf"):
        read_cdf_pose(bad)


def test_npz_layout(tmp_path):
    j = np.random.default_rng(1).normal(size=(4, 32, 3))
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d={"S1": {"Directions 1": j, "TakingPhoto": j},
                                                          "S11": {"Walking": j}})
    listing = find_sequences(tmp_path / "data_3d_h36m.npz")
    assert sorted(q.uid for q in listing.sequences) == ["S1/Directions_1", "S1/Photo", "S11/Walking"]
    from simspine.dataset.h36m import load_joints

    np.testing.assert_allclose(load_joints(listing.sequences[0]), j * 1000)  # metres -> mm


def test_release_facts_match_the_model():
    from simspine.biomech.fk import Kinematics

    axes = kinematic_axes()
    assert len(axes) == 62 and axes[:3] == ["pelvis_tilt", "pelvis_list", "pelvis_rotation"]
    assert axes == Kinematics().coordinate_names  # the model's own order
    assert len(markers_names()) == 15 and markers_names()[0] == "Hip"
    from simspine.skeletons import spinetrack37

    assert [spinetrack37().names[i] for i in marker_indices()] == markers_names()
