"""RunSettings: every knob once, presets, files, checks, and the resume guard."""

import json

import pytest

from costlab import CostlabError
from costlab._validation import Interval, Options, check
from costlab.pipeline import settings as S
from costlab.pipeline.settings import FIELDS, PRESETS, RunSettings, resolve


def test_the_defaults_are_the_standard_preset_and_the_fields_table():
    s = RunSettings.preset("standard")
    assert s == RunSettings(preset_name="standard")
    assert {k: getattr(s, k) for k in FIELDS} == {k: d for k, (d, _, _) in FIELDS.items()}
    assert s.isolation == "subprocess"  # the CLI's default, in Python too


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_changes_only_what_it_says(name):
    s = RunSettings.preset(name)
    assert s.changed(RunSettings()) == sorted(PRESETS[name])
    assert s.to_dict()["preset"] == name


def test_quick_leaves_out_pulses_and_drift_and_the_others_keep_them():
    assert RunSettings.preset("quick").pulse == 0 and RunSettings.preset("quick").drift == "off"
    for name in ("standard", "thorough"):
        assert RunSettings.preset(name).drift == "on" and RunSettings.preset(name).pulse > 0


def test_precedence_preset_then_file_then_single_settings(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("preset: quick\npoints: 6\nchurn: 4\n")
    s = resolve(None, f, churn=0)
    assert (s.preset_name, s.points, s.churn, s.rounds) == ("quick", 6, 0, PRESETS["quick"]["rounds"])
    assert resolve("thorough", f).preset_name == "thorough"  # the flag's preset wins over the file's
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"seed": 4}))
    assert resolve(None, j).seed == 4 and resolve(None, {"seed": 5}).seed == 5


@pytest.mark.parametrize("kw, needle", [
    ({"pionts": 3}, "Unknown setting: pionts (did you mean points?)"),
    ({"points": 1}, "Expected `points` to be an integer in [2, inf]. Received: 1"),
    ({"points": 2.5}, "Received: 2.5"),
    ({"refine": "yes"}, "Expected `refine` to be True or False. Received: 'yes'"),
    ({"isolation": "thread"}, "one of 'subprocess', 'inprocess'. Received: 'thread'"),
    ({"drift_share": 0}, "Expected `drift_share` to be a number in (0, 1]"),
    ({"values": "zeros"}, "Expected `values` to be one of 'auto', 'random'"),
    ({"churn": True}, "Received: True"),
    ({"min_repeats": 9, "max_repeats": 3}, "`min_repeats` <= `max_repeats`"),
])
def test_a_bad_setting_names_itself_and_what_it_received(kw, needle):
    with pytest.raises(CostlabError) as err:
        RunSettings.preset("standard", **kw)
    assert needle in str(err.value), str(err.value)


def test_a_bad_file_or_preset_is_a_clear_error(tmp_path):
    with pytest.raises(CostlabError, match="Settings file not found"):
        RunSettings.from_file(tmp_path / "absent.yaml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CostlabError, match="Could not read settings from"):
        RunSettings.from_file(tmp_path / "bad.json")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(CostlabError, match="Expected a mapping of settings"):
        RunSettings.from_file(tmp_path / "list.yaml")
    with pytest.raises(CostlabError, match="Expected a preset among quick, standard, thorough"):
        RunSettings.preset("fast")


def test_resume_refuses_changed_settings(tmp_path):
    S.write(tmp_path, RunSettings.preset("quick"))
    S.check_resume(tmp_path, RunSettings.preset("quick"))  # the same: fine
    with pytest.raises(CostlabError, match=r"points 5 -> 7"):
        S.check_resume(tmp_path, RunSettings.preset("standard"))


def test_the_validation_helper():
    assert check("x", None, None, Interval(int, 0, None)) is None
    assert check("x", 3, Interval(int, 0, 3)) == 3
    with pytest.raises(CostlabError, match=r"Expected `x` to be an integer in \[0, 3\). Received: 3"):
        check("x", 3, Interval(int, 0, 3, "left"))
    with pytest.raises(CostlabError, match="Received: nan"):
        check("x", float("nan"), Interval(float, None, None))
    with pytest.raises(CostlabError, match="one of 'a', 'b'"):
        check("x", "c", Options("a", "b"))
