"""Every field of every config dataclass, given a value out of its declared bounds or of the
wrong type, is one line ``binlearn: error: ...`` with exit status 2 — never a traceback — and
the CLI refuses it while reading the config, before any data is loaded.

The walk is built from the dataclasses themselves (every registered model and rule config,
the optimizer configs, [schedule], [data], [train]), so a new field is walked as soon as it
exists; a numeric field must declare its bounds (``setting(...)``) for the walk to test them.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from binlearn.cli import main
from binlearn.experiment import runner  # noqa: F401  (registers every learner)
from binlearn.experiment.config import (
    MODEL_CONFIGS,
    OPTIMIZER_CONFIGS,
    RULE_CONFIGS,
    DataConfig,
    ScheduleConfig,
    TrainConfig,
)
from binlearn.experiment.registry import LEARNERS

FREE_STRINGS = {("data", "dataset"), ("data", "data_dir"), ("data", "features")}
"""String fields without a fixed set of values (data.dataset is checked against the sources)."""


def _options(tp) -> set:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return {o for arg in typing.get_args(tp) for o in _options(arg)}
    if typing.get_origin(tp) in (list, tuple):
        return {("list", o) for arg in typing.get_args(tp) for o in _options(arg)}
    return {tp}


def _bad_values(section: str, item: dataclasses.Field, tp) -> list[str]:
    """TOML texts ``item`` must refuse: wrong types, then each declared bound crossed."""
    options, depth = _options(tp), 0
    while any(isinstance(o, tuple) for o in options):  # list[int], list[list[int]], ...
        options, depth = {o[1] if isinstance(o, tuple) else o for o in options}, depth + 1
    scalars = options - {type(None)}

    def wrap(value: str) -> str:
        return "[" * depth + value + "]" * depth
    values = ["{a = 1}"]  # a table is no field's type
    if scalars & {int, float} and str not in scalars:
        values.append(wrap('"x"'))
    if scalars == {str}:
        values.append(wrap("5"))
    if scalars == {bool}:
        values.append('"yes"')
    if int in scalars and float not in scalars:
        values += [wrap("2.5"), wrap("99999999999999999999")]
    if float in scalars:
        values += [wrap("nan"), wrap("inf")]
    bounds = item.metadata.get("bounds")
    if scalars & {int, float} and not scalars <= {bool}:
        assert bounds is not None and bounds.numeric(), f"{section}.{item.name} declares no bounds"
    if str in scalars and (section, item.name) not in FREE_STRINGS:
        assert bounds is not None and (bounds.choices or bounds.pattern), \
            f"{section}.{item.name}: a string field without choices"
    if bounds is None:
        return values
    step = 1 if float not in scalars else 0.5
    for bound, crossed in ((bounds.ge, lambda b: b - step), (bounds.gt, lambda b: b),
                           (bounds.le, lambda b: b + step), (bounds.lt, lambda b: b)):
        if bound is not None:
            value = crossed(bound)
            values.append(wrap(repr(int(value)) if float not in scalars else repr(float(value))))
    if bounds.choices or bounds.pattern:
        values.append(wrap('"no-such-value"'))
    if bounds.nonempty:
        values.append("[]")
    return values


def _sections() -> list[tuple[list[str], str, type]]:
    """(--set selecting a learner, section, dataclass) for every config dataclass once."""
    out: list[tuple[list[str], str, type]] = []
    seen: set[type] = set()
    for kind, rule in sorted(LEARNERS):
        base = [f'model.kind="{kind}"', f'rule.name="{rule}"']
        tables = [("model", MODEL_CONFIGS[kind]), ("rule", RULE_CONFIGS[rule])]
        if rule in OPTIMIZER_CONFIGS:
            tables += [("optimizer", OPTIMIZER_CONFIGS[rule]), ("schedule", ScheduleConfig)]
        tables += [("data", DataConfig), ("train", TrainConfig)]
        for section, cls in tables:
            if cls not in seen:
                seen.add(cls)
                out.append((base, section, cls))
    return out


def _cases() -> list[tuple[list[str], str]]:
    cases = []
    for base, section, cls in _sections():
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            for value in _bad_values(section, item, hints[item.name]):
                cases.append((base, f"{section}.{item.name}={value}"))
    return cases


# every section of the experiment given a value that is not a table, selectors of wrong types,
# top-level keys out of range
SHAPES = ["model=5", "rule=[1,2]", "data=1", "train=\"x\"", "optimizer=3", "schedule=[1]",
          "model.kind=[1]", "rule.name={a=1}", "model.kind=5", "rule.name=\"nope\"",
          "seed=-1", "seed=99999999999999999999", "seed=\"x\"", "name=5", "nosuch=1", "train.=1"]


def _expect_one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.startswith("binlearn: error: ") and err.count("\n") == 1, (argv, err)
    assert "Traceback" not in err
    return err


def test_every_field_refuses_out_of_range_and_wrong_type_values(capsys, tmp_path, defaults_toml):
    cases = _cases()
    assert len({case for _, case in cases}) > 150  # the walk covers every section's fields
    for base, case in cases:
        argv = ["train", str(defaults_toml), "--quiet", "--run-dir", str(tmp_path / "never")]
        for item in (*base, case):
            argv += ["--set", item]
        err = _expect_one_line_error(capsys, argv)
        assert case.split("=")[0] in err or case.split(".")[0] in err, (case, err)
    assert not (tmp_path / "never").exists()  # refused before the run directory was made


@pytest.mark.parametrize("case", SHAPES)
def test_sections_of_the_wrong_shape_are_one_line(capsys, tmp_path, case, defaults_toml):
    _expect_one_line_error(capsys, ["train", str(defaults_toml), "--quiet",
                                    "--run-dir", str(tmp_path / "never"), "--set", case])


def test_an_empty_config_file_says_what_it_trains(capsys, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    from binlearn.experiment import load_config

    config = load_config(empty)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sets nothing" in err and "mlp model trained by ste on digits" in err
    assert config.train.epochs == 10
