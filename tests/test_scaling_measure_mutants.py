"""Scaling's measuring, checking, symmetrising and completing functions and the scale-factor file
reader: details that mutation testing showed the other tests did not pin (issue 16,
docs/mutation.md): every refusal's full text (file named), OpenSim ScaleSet files (``apply``
false, bodies of one segment scaled differently), ``scaling.json`` files, the record of a
symmetrised segment and of a replaced outlier, where completed factors come from, which trials
are solvable. Pure Python but for the solvability check (the prepared model's marker places): a
few seconds."""

import json

import numpy as np
import pytest

from simspine.biomech import scaling as S
from simspine.biomech.scaling import PairLength, read_scale_factors, segment_names
from simspine.errors import InputError
from simspine.trajectories import Trajectories


def _scaleset(entries):
    """An OpenSim ScaleSet XML from (body, "sx sy sz", apply) entries."""
    xml = "".join(f"<Scale><scales>{v}</scales><segment>{b}</segment><apply>{a}</apply></Scale>"
                  for b, v, a in entries)
    return f"<OpenSimDocument><ScaleSet><objects>{xml}</objects></ScaleSet></OpenSimDocument>"


def _all_bodies(f=1.0, skip=()):
    return [(b, f"{f} {f} {f}", "true") for s in S.SEGMENTS for b in s.bodies if b not in skip]


def _refusal(path):
    with pytest.raises(InputError) as e:
        read_scale_factors(path)
    return str(e.value)


def test_scaleset_apply_false_skipped_and_bodies_of_a_segment(tmp_path):
    p = tmp_path / "s.xml"
    # a Scale with apply=false is ignored, even for an unknown body or non-uniform scales
    p.write_text(_scaleset(_all_bodies(1.1) + [("wing", "1 1 1", "false"), ("femur_r", "3 1 1", "False")]))
    assert read_scale_factors(p) == {s: pytest.approx(1.1) for s in segment_names()}
    # the bodies of thigh_r (femur_r, patella_r) scaled uniformly but 10% apart: refused
    entries = _all_bodies(1.0, skip=("femur_r", "patella_r")) + [("femur_r", "1 1 1", "true"),
                                                                  ("patella_r", "1.1 1.1 1.1", "true")]
    p.write_text(_scaleset(entries))
    assert _refusal(p) == (f"{p}: the bodies of segment thigh_r (femur_r, patella_r) have different factors: "
                           "simspine scales them together")
    # within 1%: their mean
    entries[-1] = ("patella_r", "1.008 1.008 1.008", "true")
    p.write_text(_scaleset(entries))
    assert read_scale_factors(p)["thigh_r"] == pytest.approx(1.004)
    # the second body of a segment scaled non-uniformly: named, with its own scales
    entries[-1] = ("patella_r", "1 1.2 1", "true")
    p.write_text(_scaleset(entries))
    assert _refusal(p) == f"{p}: body patella_r is scaled non-uniformly (1 1.2 1): simspine scales each segment uniformly"


def test_scaleset_refusals(tmp_path):
    p = tmp_path / "s.xml"
    p.write_text(_scaleset(_all_bodies() + [("wing", "1 1 1", "true"), ("tail", "1 1 1", "true")]))
    bodies = ", ".join(b for s in S.SEGMENTS for b in s.bodies)
    assert _refusal(p) == f"{p}: ScaleSet names bodies the model does not have: wing, tail (model bodies: {bodies})"
    p.write_text("<OpenSimDocument><ScaleSet><objects/></ScaleSet></OpenSimDocument>")
    assert _refusal(p) == (f"{p}: no <Scale> entry (an OpenSim ScaleSet XML or a JSON {{segment: factor}} "
                           "is expected)")


def test_json_factor_files(tmp_path):
    f = {s: 1.0 + 0.01 * i for i, s in enumerate(segment_names())}
    p = tmp_path / "scaling.json"
    # a scaling.json written by simspine ik: its "factors"
    p.write_text(json.dumps({"factors": f, "mass_kg": 70.0, "height_estimate_m": 1.7}))
    assert read_scale_factors(p) == f
    for bad, shown in (("1.05", "'1.05'"), (True, "True"), (None, "None")):
        p.write_text(json.dumps(dict(f, head=bad)))
        assert _refusal(p) == f"{p}: factor of head is not a number: {shown}"
    p.write_text(json.dumps(dict(f, head=5.0, foot_l=0.4)))
    assert _refusal(p) == f"{p}: implausible factors (allowed 0.5-2.0): head 5, foot_l 0.4"


def test_check_factors_names_the_source():
    with pytest.raises(InputError) as e:
        S.check_factors({"head": 5.0}, source="trial.trc")
    assert str(e.value) == ("trial.trc: implausible scale factor 5.000 for segment head, allowed 0.5-2.0: check the "
                            "units (expected metres; millimetres read as metres give ~1000) and the marker labels")


def test_other_side():
    assert S._other_side("upperarm_r") == "upperarm_l" and S._other_side("upperarm_l") == "upperarm_r"
    assert S._other_side("torso") is None


def test_sided_segments_have_their_pairs():
    seg = {s.name: s for s in S.SEGMENTS}
    assert seg["forearm_r"].pairs == (("RElbow", "RWrist"),) and seg["forearm_l"].bodies == ("ulna_l", "radius_l", "hand_l")
    assert seg["foot_l"].pairs == (("LHeel", "LBigToe"), ("LHeel", "LSmallToe"), ("LBigToe", "LSmallToe"))


def test_completed_factors_say_where_they_come_from():
    """An unmeasured segment with several measured neighbours takes their mean ("neighbours",
    plural), with one measured neighbour its factor ("neighbour")."""
    measured = {"torso": 1.1, "thigh_l": 1.0, "thigh_r": 1.2, "upperarm_l": 0.9}
    lengths = {"Hip-Neck": PairLength(("Hip", "Neck"), 0.5, 10, 0)}
    factors, sources = S._complete_factors(measured, lengths, None, "unused.osim")
    assert factors["pelvis"] == pytest.approx(1.1) and sources["pelvis"] == "from neighbours torso, thigh_l, thigh_r"
    assert factors["head"] == 1.1 and sources["head"] == "from neighbour torso"
    assert sources["torso"] == "measured from pairs Hip-Neck 0.500 m"
    assert factors["upperarm_r"] == 0.9 and sources["upperarm_r"] == "from the other side (upperarm_l, measured)"


def test_symmetrised_record():
    """The record of a tied segment, every key: both factors, their pairs and spreads, the
    spread weights, the shared factor, the rule and why."""
    lengths = {"LHeel-LBigToe": PairLength(("LHeel", "LBigToe"), 0.24, 10, 0, 0.02),
               "RHeel-RBigToe": PairLength(("RHeel", "RBigToe"), 0.20, 10, 0, 0.04)}
    measured = {"foot_l": 1.2, "foot_r": 1.0, "torso": 1.0}
    tied, warnings = {}, []
    S._symmetrise(measured, lengths, tied, warnings, "default-pose estimate")
    wl, wr = 0.8, 0.2  # 1/0.02^2 : 1/0.04^2 = 4 : 1
    f = wl * 1.2 + wr * 1.0
    assert measured == {"foot_l": pytest.approx(f), "foot_r": pytest.approx(f), "torso": 1.0}
    assert tied == {"foot": {
        "left": 1.2, "right": 1.0, "difference": pytest.approx(0.2 / 1.1), "found": "default-pose estimate",
        "pairs_left": {"LHeel-LBigToe": 0.24}, "pairs_right": {"RHeel-RBigToe": 0.20},
        "spread_left": 0.02, "spread_right": 0.04, "weight_left": pytest.approx(wl), "weight_right": pytest.approx(wr),
        "factor_at_tie": pytest.approx(f),
        "rule": "mean weighted 0.80/0.20 towards the side whose pair lengths vary less",
        "why": "left/right factors differ by more than 15%; a body is close to symmetric, so the difference is "
               "taken as marker error and both sides share one factor"}}
    assert warnings == [f"left/right scale factors for foot differ by 18% (default-pose estimate): left 1.200 from "
                        f"LHeel-LBigToe 0.240 m (spread 2%), right 1.000 from RHeel-RBigToe 0.200 m (spread 4%); both "
                        f"sides use {f:.3f} (mean weighted 0.80/0.20 towards the side whose pair lengths vary less). "
                        "If a side's labels or markers are wrong, fix them; --strict refuses such trials"]


def test_replaced_outlier_record():
    lengths = {"LEar-REar": PairLength(("LEar", "REar"), 0.3, 10, 0)}
    generic = {"LEar-REar": 0.15}
    measured = {"head": 2.0, "torso": 1.0, "pelvis": 1.05, "thigh_l": 0.95}
    replaced = {}
    S._replace_outliers(measured, lengths, generic, replaced, "refinement round 1")
    assert measured == {"torso": 1.0, "pelvis": 1.05, "thigh_l": 0.95}
    assert replaced == {"head": {
        "measured": 2.0, "median": 1.025, "deviation": pytest.approx(2.0 / 1.025 - 1), "found": "refinement round 1",
        "pairs": {"LEar-REar": 0.3}, "model_pairs": {"LEar-REar": 0.15},
        "why": "more than 30% from the median of the measured factors: its markers do not sit where the model's do "
               "(a subject's proportions do not differ that much), so they do not measure the segment"}}


def test_asymmetry_refusal_without_pairs():
    with pytest.raises(InputError) as e:
        S.check_factors({"foot_l": 1.2, "foot_r": 1.0}, source="t.trc")
    assert str(e.value) == ("t.trc: strongly asymmetric scale factors for foot: left 1.200; right 1.000 (differ by 18%, "
                            "more than 15%, and strict checking is on): check the left/right labels and these markers, "
                            "or run without --strict to scale both sides with one symmetric factor")


def test_zero_length_pair_refusal_names_the_source():
    xyz = np.zeros((2, 2, 3))
    xyz[:, 1, 0] = 0.0005  # 0.5 mm apart
    with pytest.raises(InputError) as e:
        S.measure_segments(Trajectories(np.arange(2.0), ["LHeel", "LBigToe"], xyz), source="t.trc")
    assert str(e.value) == ("t.trc: zero-length segment foot_l: markers LHeel and LBigToe coincide (distance 0.500 mm); "
                            "check that they are different points (labels, duplicated columns) or leave one out")


@pytest.fixture(scope="module")
def model_markers(tmp_path_factory):
    from simspine.biomech.model import prepare_model

    path = str(prepare_model(cache_dir=tmp_path_factory.mktemp("cache")))
    return path, S._generic_markers(path)


def test_solvable_with_exactly_three_trunk_markers(model_markers):
    """Three trunk markers not on one line are enough (with a height); the refusal lists the
    trunk markers, those present, and every model marker missing ('none' when all are there)."""
    path, places = model_markers
    trunk = [n for n, (body, _) in places.items() if body in S.TRUNK_BODIES]
    three = ["LHip", "RHip", "Neck"]
    assert set(three) <= set(trunk)
    xyz = np.array([[places[n][1] for n in three]])
    S.check_solvable(Trajectories(np.zeros(1), three, xyz), {}, 1.7, path)
    with pytest.raises(InputError) as e:
        S.check_solvable(Trajectories(np.zeros(1), three[:2], xyz[:, :2]), {}, 1.7, path, source="t.trc")
    missing = [n for n in places if n not in three[:2]]
    assert str(e.value) == (f"t.trc: cannot fit the model to these markers: the pelvis and trunk need at least 3 markers "
                            f"not on one line among {', '.join(trunk)} (present: LHip, RHip). Markers of the model "
                            f"missing from the trial: {', '.join(missing)}. Add the missing markers (SpineTrack-37 "
                            "names, present in at least one frame)")
    names = list(places)
    full = Trajectories(np.zeros(1), names, np.array([[places[n][1] for n in names]]))
    with pytest.raises(InputError) as e:
        S.check_solvable(full, {}, None, path)
    assert str(e.value).endswith(". Markers of the model missing from the trial: none. Add the missing markers "
                                 "(SpineTrack-37 names, present in at least one frame)")
