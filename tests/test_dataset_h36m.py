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


def _fake_store(path, extras=True, nan=False):
    """A store written from made-up arrays (a rigid body translated over 5 frames)."""
    from simspine.calibration import h36m_cameras
    from simspine.dataset.sequence import project_keypoints
    from simspine.dataset.store import write_store
    from simspine.frames import zup_to_yup
    from simspine.synth.rig import h36m_rig

    rng = np.random.default_rng(2)
    stage = zup_to_yup(h36m_rig("S9").stage_zup)
    kp = stage + rng.uniform(-0.3, 0.3, (1, 37, 3)) + np.array([0, 1.0, 0]) + np.linspace(0, 0.1, 5)[:, None, None]
    r = {"markers": kp[:, marker_indices()], "kinematics": np.zeros((5, 62)),
         "meta": {"subject": "S9", "sequence": "Walking_1", "action": "Walking", "subaction": "1",
                  "original_name": "Walking 1", "rate_hz": 50.0}}
    if nan:
        r["markers"][2, 3, 1] = np.nan
    if extras:
        uvv, boxes = project_keypoints(kp, h36m_cameras("S9"))
        r.update(keypoints37=kp, timestamps=np.arange(5) / 50.0, keypoints2d=uvv, boxes=boxes)
    write_store(path, {"S9": {"cameras": h36m_cameras("S9"), "model_xml": None, "scaling": None}}, [r], {})
    return kp


def test_store_round_trip_validate_and_cli(tmp_path, capsys):
    from simspine.cli import main
    from simspine.dataset.store import Store
    from simspine.dataset.validate import validate_store

    kp = _fake_store(tmp_path / "a.h5")
    with Store(tmp_path / "a.h5") as st:
        assert st.subjects() == ["S9"] and st.sequences("S9") == ["Walking_1"]
        seq = st.sequence("S9", "Walking_1")
        np.testing.assert_allclose(seq.keypoints37, kp)
        assert st.f["S9"].attrs["split"] == "test"
    problems, notes = validate_store(tmp_path / "a.h5")
    assert problems == [], problems
    assert main(["dataset", "info", str(tmp_path / "a.h5")]) == 0
    assert "S9 (test): 1 sequences, 5 frames, 4 cameras" in capsys.readouterr().out
    # the release layout alone (no extras) reads and validates too
    _fake_store(tmp_path / "b.h5", extras=False)
    with Store(tmp_path / "b.h5") as st:
        assert st.sequence("S9", "Walking_1").keypoints37 is None
    assert validate_store(tmp_path / "b.h5")[0] == []
    assert main(["dataset", "export", str(tmp_path / "b.h5"), "--format", "release", "--out",
                 str(tmp_path / "rel")]) == 0
    assert (tmp_path / "rel" / "positions" / "S9" / "S9_Walking_1.trc").is_file()
    # a non-finite marker is a problem, and exit status 1
    _fake_store(tmp_path / "c.h5", nan=True)
    assert main(["dataset", "validate", str(tmp_path / "c.h5")]) == 1
    assert "markers: 1 non-finite" in capsys.readouterr().out


def test_build_dataset_cli_errors(tmp_path, capsys):
    from simspine.cli import main

    with pytest.raises(SystemExit) as e:
        main(["build-dataset", "--h36m", str(tmp_path), "--out", str(tmp_path / "x.h5"), "--workers", "2",
              "--scheduler", "tcp://localhost:1"])
    assert e.value.code == 2
    assert main(["build-dataset", "--h36m", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.h5")]) != 0
    assert "not found" in capsys.readouterr().err
    assert main(["build-dataset", "--h36m", str(tmp_path), "--out", str(tmp_path / "x.h5"), "--ik-backend", "nope"]) != 0
    assert "unknown IK backend 'nope' (known: jacobian, opensim" in capsys.readouterr().err
    assert main(["build-dataset", "--h36m", str(tmp_path), "--out", str(tmp_path / "x.h5"), "--spine-2d",
                 str(tmp_path / "missing.npz")]) != 0
    assert "missing.npz: 2D detections file not found" in capsys.readouterr().err
