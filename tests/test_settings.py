"""Flags generated from configuration dataclasses (settings.py): types, bounds, groups, required
settings, deprecated old names, and flags.txt lines."""

import dataclasses
from typing import Optional, Tuple

import pytest
from absl import flags

from tfdfc import settings
from tfdfc.config import CompressConfig
from tfdfc.errors import ConfigError
from tfdfc.settings import REQUIRED, setting
from tfdfc.train import TrainConfig


@dataclasses.dataclass(frozen=True)
class Toy:
    path: str = setting(REQUIRED, "A path.", "run")
    mode: str = setting("a", "A or b.", "run", choices=("a", "b"))
    sparsity: float = setting(0.0, "Zeros.", "pruning", flag="prune_sparsity", old="sparsity",
                              lower=0.0, upper=1.0)
    ends: Optional[bool] = setting(None, "Ends too.", "pruning", kind="bool")
    grid: Tuple[float, ...] = setting((), "Numbers.", "pruning")
    steps: int = setting(3, "Steps.", "training", lower=1)
    note: str = ""  # not a setting: no flag


def _parsed(*args):
    values = flags.FlagValues()
    settings.define_flags(Toy, "toy", flag_values=values)
    values(["program", *args])
    return values


def test_flags_take_the_settings_types_names_and_defaults():
    values = _parsed("--path=p", "--prune_sparsity=0.5", "--grid=0.1,0.2", "--noends")
    lines = []
    got = settings.values_from_flags(Toy, lines.append, flag_values=values)
    assert got == {"path": "p", "mode": "a", "sparsity": 0.5, "ends": False, "grid": (0.1, 0.2),
                   "steps": 3}
    assert Toy(**got).sparsity == 0.5 and not lines
    assert settings.given(Toy, flag_values=values) == {"path", "sparsity", "grid", "ends"}
    assert "note" not in values and "ends" in values


def test_groups_bounds_choices_and_required_are_enforced():
    values = _parsed("--path=p")
    modules = values.flags_by_module_dict()
    assert {flag.name for flag in modules["toy (pruning)"]} >= {"prune_sparsity", "sparsity",
                                                                "ends", "grid"}
    for bad in (["--path=p", "--prune_sparsity=2"], ["--path=p", "--mode=c"],
                ["--path=p", "--steps=0"], []):
        with pytest.raises(flags.Error):
            _parsed(*bad)


def test_bounds_and_choices_bind_values_given_from_python_too():
    """The flags' bounds hold for a configuration made in Python (the API), named by flag."""
    settings.check_bounds(Toy(path="p", sparsity=1.0, steps=1))
    for bad, message in ((dict(mode="c"), "--mode must be one of a, b, got 'c'"),
                         (dict(sparsity=1.5), "--prune_sparsity must be <= 1.0, got 1.5"),
                         (dict(steps=0), "--steps must be >= 1, got 0"),
                         (dict(sparsity="0.5"), "--prune_sparsity must be a number, got '0.5'"),
                         (dict(steps=2.5), "--steps must be a whole number, got 2.5"),
                         (dict(steps=True), "--steps must be a whole number, got True"),
                         (dict(ends="yes"), "--ends must be True or False, got 'yes'"),
                         (dict(mode=1), "--mode must be a string, got 1")):
        with pytest.raises(ConfigError, match=message):
            settings.check_bounds(Toy(path="p", **bad))
    # Settings that no check of their own covered until the bounds bound Python callers.
    with pytest.raises(ConfigError, match="--mixed_search_steps must be >= 0"):
        CompressConfig(teacher="t", out_dir="o", quantize="mixed", mixed_search_steps=-1).validate()
    with pytest.raises(ConfigError, match="--student_optimizer must be one of"):
        TrainConfig(student_optimizer="rmsprop").validate()
    # ...and before anything reads them: a misspelt choice is named, not "no method runs it".
    with pytest.raises(ConfigError, match="--prune must be one of none, magnitude, slim, got "):
        CompressConfig(teacher="t", out_dir="o", prune="magnitud").validate()
    with pytest.raises(ConfigError, match="--student_lr must be a number"):
        TrainConfig(student_lr="0.01").validate()


def test_an_old_name_works_with_a_deprecation_line_and_is_written_under_the_new_one():
    values = _parsed("--path=p", "--sparsity=0.25")
    lines = []
    assert settings.values_from_flags(Toy, lines.append, flag_values=values)["sparsity"] == 0.25
    assert lines == ["--sparsity is deprecated and will be removed: use --prune_sparsity"]
    text = settings.flag_lines([Toy], flag_values=values)
    assert "--prune_sparsity=0.25\n" in text and "--sparsity=" not in text
    # Only what was given: a default written out would be "given" on replay.
    assert "--grid" not in text and "--ends" not in text and "--path=p\n" in text
    both = _parsed("--path=p", "--sparsity=0.25", "--prune_sparsity=0.5")
    with pytest.raises(ConfigError, match="deprecated name of --prune_sparsity: give only one"):
        settings.values_from_flags(Toy, print, flag_values=both)


def test_a_list_setting_refuses_what_is_not_a_number():
    values = _parsed("--path=p", "--grid=0.1,abc")
    with pytest.raises(ConfigError, match="--grid takes comma-separated numbers"):
        settings.values_from_flags(Toy, print, flag_values=values)


@pytest.mark.parametrize("cls", [CompressConfig, TrainConfig])
def test_every_field_of_the_run_configuration_has_a_flag(cls):
    fields = {field.name for field in dataclasses.fields(cls)} - {"recipe", "train"}
    assert {field.name for field in settings.fields_with_flags(cls)} == fields
