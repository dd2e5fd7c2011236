"""The OpenSim-bound part of subject scaling, details that mutation testing showed the other tests
did not pin (issue 16): refusal texts and bounds, ``given_scaling``'s report, ``scale_subject``
passing its arguments on, the record of a factor replaced as an outlier. One 10-frame trial,
estimates without refinement rounds: a few seconds."""

import numpy as np
import pytest

from simspine.biomech.fk import Kinematics, run_fk
from simspine.biomech.motion import random_motion
from simspine.biomech.scaling import (
    _generic_lengths_and_height,
    estimate_scaling,
    given_scaling,
    model_stature,
    scale_model,
    scale_subject,
    segment_names,
)
from simspine.errors import InputError


@pytest.fixture(scope="module")
def trial(model_path, tmp_path_factory):
    """A subject 5% taller than the generic model in every segment, 10 frames of random motion."""
    f = {s: 1.05 for s in segment_names()}
    kin = Kinematics(str(scale_model(f, tmp_path_factory.mktemp("subj") / "s.osim", 70.0, model_path)))
    traj, _ = run_fk(kin, random_motion(kin, 10, seed=3))
    return traj


def test_scale_model_refusals(model_path, tmp_path):
    with pytest.raises(InputError) as e:
        scale_model({"wing_l": 1.0, "tail": 1.0, "head": 1.0}, tmp_path / "x.osim", 70.0, model_path)
    assert str(e.value) == f"unknown segments: tail, wing_l (known: {', '.join(segment_names())})"
    with pytest.raises(InputError) as e:
        scale_model({"head": 1.0}, tmp_path / "x.osim", 0.0, model_path)
    assert str(e.value) == "mass must be a positive number of kg, got 0.0"
    assert not (tmp_path / "x.osim").exists()


def test_given_scaling_report(model_path, tmp_path):
    f = {s: 1.05 for s in segment_names()}
    f["foot_l"], f["foot_r"] = 1.2, 1.0  # the stature's heel-to-sole part uses their mean
    rep = given_scaling(f, tmp_path / "g.osim", 300.0, height=1.20, model_path=model_path, source="f.json")
    kin = Kinematics(str(tmp_path / "g.osim"))
    assert rep.height_estimate_m == pytest.approx(model_stature(kin, foot_factor=1.1), abs=1e-12)
    assert rep.height_estimate_m != pytest.approx(model_stature(kin, foot_factor=1.0), abs=1e-4)
    assert kin.model.getTotalMass(kin.state) == pytest.approx(300.0)
    assert rep.factors == f and rep.mass_kg == 300.0 and rep.refine_rounds == 0 and rep.height_given_m == 1.2
    assert rep.factor_sources == {k: "given (f.json)" for k in f} and rep.model_path == str(tmp_path / "g.osim")
    assert rep.warnings == [f"height of the model scaled by the given factors ({rep.height_estimate_m:.3f} m) differs "
                            "from the given height (1.200 m) by more than 10%"]
    rep = given_scaling(f, tmp_path / "g2.osim", 20.0, model_path=model_path)
    assert rep.warnings == [] and set(rep.factor_sources.values()) == {"given"}
    for bad in (300.5, 19.9, float("nan")):
        with pytest.raises(InputError) as e:
            given_scaling(f, tmp_path / "g3.osim", bad, model_path=model_path, source="f.json")
        assert str(e.value) == f"f.json: mass must be in kg (20-300), got {bad}: give --mass in kilograms"


def test_estimate_scaling_mass_bounds_and_rounds(model_path, trial):
    rep = estimate_scaling(trial, mass=300.0, model_path=model_path, refine=0)
    assert rep.mass_kg == 300.0 and rep.refine_rounds == 0
    assert np.median(list(rep.factors.values())) == pytest.approx(1.05, abs=0.005)  # (refinement fixes the arms)
    for bad in (300.01, 19.99):
        with pytest.raises(InputError) as e:
            estimate_scaling(trial, mass=bad, model_path=model_path, refine=0, source="t.trc")
        assert str(e.value) == f"t.trc: mass must be in kg (20-300), got {bad}: give --mass in kilograms"


def test_scale_subject_passes_its_arguments_on(model_path, trial, tmp_path):
    # another "generic" model: the report's generic pair lengths are that model's
    other = str(scale_model({s: 1.1 for s in segment_names()}, tmp_path / "big.osim", 70.0, model_path))
    out = tmp_path / "deep" / "subject.osim"
    out.parent.mkdir()
    rep = scale_subject(trial, out, 70.0, model_path=other, refine=0)
    big, _ = _generic_lengths_and_height(other)
    small, _ = _generic_lengths_and_height(model_path)
    assert rep.generic_pair_lengths == {k: big[k] for k in rep.pair_lengths}
    assert rep.generic_pair_lengths != {k: small[k] for k in rep.pair_lengths}
    assert rep.model_path == str(out) and out.is_file()
    assert np.median(list(rep.factors.values())) == pytest.approx(1.05 / 1.1, abs=0.005)
    with pytest.raises(InputError) as e:
        scale_subject(trial, out, 5.0, model_path=model_path, refine=0, source="s.trc")
    assert str(e.value).startswith("s.trc: mass must be in kg")
    # strict: left/right factors 20% apart are refused instead of symmetrised
    lopsided = trial.select(trial.names)
    for name in ("LBigToe", "LSmallToe"):
        j, h = lopsided.names.index(name), lopsided.names.index("LHeel")
        lopsided.xyz[:, j] = lopsided.xyz[:, h] + 1.2 * (lopsided.xyz[:, j] - lopsided.xyz[:, h])
    rep = scale_subject(lopsided, tmp_path / "l.osim", model_path=model_path, refine=0)
    assert "foot" in rep.symmetrised and not rep.strict
    with pytest.raises(InputError, match="foot"):
        scale_subject(lopsided, tmp_path / "l2.osim", model_path=model_path, refine=0, strict=True)


def test_replaced_factor_record(model_path, trial):
    """Ear markers 4 cm apart instead of ~15: the head factor is an outlier, replaced by its
    neighbour's; the record keeps the source the factor came from, the warning the stage."""
    traj = trial.select([n for n in trial.names if n != "Head"])
    le, re = traj.names.index("LEar"), traj.names.index("REar")
    mid = 0.5 * (traj.xyz[:, le] + traj.xyz[:, re])
    traj.xyz[:, le] = mid + 0.3 * (traj.xyz[:, le] - mid)
    traj.xyz[:, re] = mid + 0.3 * (traj.xyz[:, re] - mid)
    rep = estimate_scaling(traj, model_path=model_path, refine=0)
    rec = rep.replaced["head"]
    assert rep.factor_sources["head"] == (rec["source"] + f"; measured {rec['measured']:.3f} replaced as an outlier "
                                          "(see replaced)")
    assert rec["source"].startswith("from neighbour torso") and rec["found"] == "default-pose estimate"
    warn = [w for w in rep.warnings if " for head is " in w]
    assert len(warn) == 1 and "(default-pose estimate; pairs LEar-REar" in warn[0]


def test_refinement_step_is_clipped_at_ten_percent_of_the_factor(model_path, trial):
    """The default-pose estimate of the upper arms is ~10% long (their pairs span the shoulder); one
    refinement round takes the whole multiplicative step back when it is under 10% of the factor
    (here about 8%: more than 0.1 / f, the bound a plain 10% of 1 / f would give)."""
    f0 = estimate_scaling(trial, model_path=model_path, refine=0).factors["upperarm_l"]
    f1 = estimate_scaling(trial, model_path=model_path, refine=1).factors["upperarm_l"]
    assert f0 > 1.12
    assert 0.1 / f0 + 1e-3 < f0 - f1 <= 0.1 * f0
    assert f1 == pytest.approx(1.05, abs=0.015)
