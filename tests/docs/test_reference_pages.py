"""The generated reference pages are fresh: the configuration keys (from the config dataclasses)
and the command-line arguments (from the parser) on the site are what the code declares."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from binlearn.experiment.config import MODEL_CONFIGS, OPTIMIZER_CONFIGS, RULE_CONFIGS, Bounds
from binlearn.experiment.config_reference import bounds_text, field_docs, markdown, render_config_reference
from binlearn.reference_pages import GENERATED, main, render_page, stale_pages

ROOT = Path(__file__).resolve().parents[2]


def test_the_generated_reference_pages_are_fresh():
    stale = stale_pages(ROOT)
    assert not stale, f"{', '.join(stale)} stale: run `python -m binlearn.reference_pages` and commit"


def test_every_config_key_and_its_bounds_are_on_the_page():
    page = (ROOT / GENERATED["config"][0]).read_text()
    for registry in (MODEL_CONFIGS, RULE_CONFIGS, OPTIMIZER_CONFIGS):
        for cls in registry.values():
            for item in dataclasses.fields(cls):
                section = cls.SECTION
                key = f"| `{section}.{item.name}` |"
                row = next((line for line in page.splitlines() if line.startswith(key)), None)
                assert row is not None, f"{section}.{item.name} ({cls.__name__}) is not on the page"
                bounds = item.metadata.get("bounds")
                if bounds is not None and bounds_text(bounds):
                    assert bounds_text(bounds).replace("|", "\\|") in page


def test_a_changed_bound_makes_the_page_stale(monkeypatch):
    """The check has teeth: a bound changed in the dataclass changes the rendering."""
    from binlearn.experiment.config import TrainConfig

    before = render_config_reference()
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == "epochs")
    changed = dict(field.metadata, bounds=Bounds(ge=2, le=10))
    monkeypatch.setattr(field, "metadata", changed)
    after = render_config_reference()
    assert before != after and "| `train.epochs` | int | `10` | in [2, 10] |" in after


def test_bounds_and_docstrings_in_words():
    assert bounds_text(Bounds(ge=1)) == "≥ 1"
    assert bounds_text(Bounds(gt=0, le=1)) == "in (0, 1]"
    assert bounds_text(Bounds(ge=0, lt=1, nonempty=True)) == "in [0, 1); not empty"
    assert bounds_text(Bounds(ge=-1e9, le=1e9)) == "in [-1e9, 1e9]"
    assert bounds_text(Bounds(choices=("a", "b"))) == "one of `a`, `b`"
    assert bounds_text(None) == ""
    assert markdown("``x`` and :class:`~binlearn.energy.DriveNudge` and :mod:`binlearn.energy`") == (
        "`x` and `DriveNudge` and `binlearn.energy`")
    from binlearn.experiment.config import DataConfig

    assert field_docs(DataConfig)["train_size"].startswith("Train on the first N images")


def test_unknown_or_unclosed_blocks_are_refused():
    with pytest.raises(ValueError, match="unknown generated block 'nope'"):
        render_page("<!-- generated: nope (python -m binlearn.reference_pages) -->\n<!-- end generated -->")
    with pytest.raises(ValueError, match="has no"):
        render_page("<!-- generated: cli (python -m binlearn.reference_pages) -->\nno end")


def test_the_writer_rewrites_a_stale_page(tmp_path, capsys):
    """A generated block and a quoted results table (docs/getting-started.md), both edited by
    hand, are found and rendered again."""
    quoting = "docs/getting-started.md"
    for page in [*(page for page, _ in GENERATED.values()), quoting, "docs/results.toml"]:
        target = tmp_path / page
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (ROOT / page).read_text()
        for end in ("<!-- end generated -->", "<!-- end table -->"):
            text = text.replace(end, f"stale\n{end}", 1)
        target.write_text(text)
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().out.count("stale") == 3
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--root", str(tmp_path), "--check"]) == 0
    for page in [*(page for page, _ in GENERATED.values()), quoting]:
        assert (tmp_path / page).read_text() == (ROOT / page).read_text()


def test_every_command_and_argument_is_on_the_cli_page():
    from binlearn.cli import _parser

    page = (ROOT / GENERATED["cli"][0]).read_text()
    parser = _parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in commands.choices.items():
        assert f"### `binlearn {name}`" in page
        for action in sub._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                assert f"`{option}" in page, (name, option)
