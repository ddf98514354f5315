"""The results file (``docs/results.toml``): every paper-table row binlearn has a config for,
with the paper's figure and our last measured one, and every table of ``docs/results.md``.

One file, read by ``binlearn reproduce --list`` and rendered into docs/results.md (between
``<!-- table: ID -->`` and ``<!-- end table -->`` lines) and ``docs/figures/overview.png`` by
``binlearn reproduce --write-docs``, so the list, the tables and the figure cannot disagree
(``tests/reproduce/test_results.py`` checks the committed docs are what the file renders to).

Layout of the TOML::

    [[row]]                       # a paper-table row (one per config under configs/<paper>/)
    id = "laydevant2021/fc-binary-weights"     # PAPER/CONFIG-STEM, the ROW of `reproduce`
    paper = "laydevant2021"
    config = "configs/laydevant2021/fc-binary-weights.toml"
    row = "FC 784-4096-10, binary weights"     # what the row is, in the paper's terms
    paper_figure = "same as float EP"          # the paper's figure or claim, as text
    paper_value = 0.9696                       # optional: the paper's figure as a number
    ours = 0.9786                              # optional: our last measured figure (none: not run)
    ours_data = "MNIST full, 20 epochs"        # what that figure was measured on
    table = "laydevant2021-fc"                 # optional: the detail table that holds it
    quick = ["data.train_size=1000", ...]      # --quick: the scaled-down overrides
    quick_note = "1,000 images, 1 epoch"

    # the run that measured `ours` (or would measure it), as data: `binlearn train CONFIG`
    overrides = ["train.epochs=20"]            # optional: its --set items (none: as published)
    run_dir = "runs/bw"                        # optional: its --run-dir (needed with convert)
    convert = {timesteps = 32, one_step = true}  # optional: `binlearn convert RUN_DIR` after
                                               # training (ConvertSettings; the figure is then
                                               # the spiking network's accuracy after the last step)
    ours_step = 1                              # optional, with convert: the figure is the
                                               # accuracy after this step, not the last
    runs_note = "three commands (...)"         # instead of overrides and run_dir, where the
                                               # figure came from several commands (branches,
                                               # resumes): where they are written down

    [[table]]                     # a table of docs/results.md, cells as markdown text
    id = "laydevant2021-fc"
    columns = ["paper row", ...]
    rows = [["FC 784-4096-10 ...", ...], ...]

    [[claim]]                     # a relative claim of a paper, tested as a paired comparison
    id = "laydevant2021/C1-fc"                 # PAPER/NAME, the CLAIM of `reproduce`
    paper = "laydevant2021"
    claim = "binary weights reach the accuracy of full-precision EP, fully connected (MNIST)"
    paper_difference = 0.0                     # the claimed binary − float difference, in points
    within = 0.5                               # met when mean(binary − float) >= paper_difference − within
    setting = "published"                      # the relaxation: "published" (the configs' T) or
                                               # "fast_fixed_point" (FAST_FIXED_POINT first)
    overrides = ["data.train_size=8000", ...]  # --set items shared by both arms (the pairing)
    quick = ["data.train_size=500", ...]       # --quick: after the overrides, first seed only
    seeds = [0, 1, 2]
    labels = ["BPTT", "EP"]                    # optional: the arms' names (default float, binary)
    not_testable = "needs ..."                 # optional: why it cannot be tested here
    note = "..."                               # optional free text
    float = {row = "laydevant2021/fc-float", overrides = [], test = [0.97, 0.971], validation = [...]}
    binary = {row = "laydevant2021/fc-binary-weights", test = [], validation = []}

    [[curve]]                     # a measured curve: accuracy against bits of learning state
    id = "bits-ep-1024"                        # its generated table is `curve-ID` in results.md
    title = "binary EP 784-1024-100, MNIST 8k"
    data = "MNIST 8k (+ 1,000 validation), 10 epochs"
    machine = "AMD EPYC (Zen 4), one thread per run"
    command = "python benchmarks/bits_per_synapse.py final --setting ep-1024"
    points = [{method = "counter", bits = 8, bits_per_synapse = 9, chosen = "e13-th13-s0",
               validation = 0.93, test = [0.90, 0.91, 0.90]}, ...]

  A curve's points are drawn as one line per ``method`` in docs/figures/bits-per-synapse.png,
  x = ``bits_per_synapse``, y = the mean test accuracy ± sample sd over its seeds; ``validation``
  is the figure that chose the point's setting (``chosen``).

  Each arm names a [[row]] (its config), optional ``overrides`` of its own (after the claim's)
  and the measured ``test`` / ``validation`` accuracies, one per seed in ``seeds`` order (fewer:
  those seeds are not run yet). The paired difference of seed i is binary.test[i] −
  float.test[i]; ``Claim.verdict`` and the statistics (mean ± sample sd, in points) come from
  them, and ``binlearn reproduce CLAIM`` runs both arms for every seed (:meth:`Claim.settings`).

The command shown for a row (``reproduce --list``, the summary tables) is rendered from those
fields by :meth:`PaperRow.command`; nothing reads shell text back.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from binlearn.atomic import atomic_write_text
from binlearn.experiment.config import ConfigError, parse_toml

__all__ = ["PaperRow", "Table", "Results", "load_results", "render_markdown", "find_results_file",
           "PAPERS", "plot_overview", "Arm", "Claim", "Stats", "FAST_FIXED_POINT", "SETTINGS", "claims_table",
           "plot_claims", "Curve", "CurvePoint", "plot_curves", "curve_table"]

PAPERS = {
    "laydevant2021": "Binary EP (Laydevant et al. 2021)",
    "colombo2024": "Binary-native local learning (Colombo et al. 2024)",
    "lu2020": "Binary spiking networks (Lu & Sengupta 2020)",
}
_ROW_KEYS = {"id", "paper", "config", "row", "paper_figure", "paper_value", "ours", "ours_data", "table",
             "quick", "quick_note", "overrides", "run_dir", "convert", "ours_step", "runs_note"}
_TABLE_KEYS = {"id", "columns", "rows"}
_CLAIM_KEYS = {"id", "paper", "claim", "paper_difference", "within", "setting", "overrides", "quick", "seeds",
               "labels", "not_testable", "note", "float", "binary"}
_ARM_KEYS = {"row", "overrides", "test", "validation"}
_CURVE_KEYS = {"id", "title", "data", "machine", "command", "points", "note"}
_POINT_KEYS = {"method", "bits", "bits_per_synapse", "chosen", "validation", "test"}
_CLAIMS_ID = "claims"  # the generated claims table of docs/results.md

FAST_FIXED_POINT = ('rule.relaxation="even_odd"', "rule.free_tolerance=1e-5")
"""The ``--set`` items of a claim's ``setting = "fast_fixed_point"``, put before every other
item of both arms: the even/odd schedule, whose half-sweeps set each layer to its exact
minimiser given its neighbours, plus a convergence test that ends the free phase once no state
moves by more than 1e-5. Not the published T (a fixed number of synchronous steps): whether it
changes a claim's outcome is being validated by an A/B in docs/claims.md."""

SETTINGS = {"published": "the configs' T (as published)",
            "fast_fixed_point": "even/odd relaxation to a fixed point (FAST_FIXED_POINT)"}
"""A claim's ``setting`` values, with what each means."""
_BEGIN = re.compile(r"^<!-- table: ([\w./-]+) -->$")
_END = "<!-- end table -->"
_SUMMARY_IDS = {f"summary-{paper}": paper for paper in PAPERS}  # the generated per-paper tables


@dataclass(frozen=True)
class PaperRow:
    """One paper-table row with a config (see the module docstring for the fields)."""

    id: str
    paper: str
    config: str
    row: str
    paper_figure: str
    quick: list[str]
    quick_note: str
    paper_value: float | None = None
    ours: float | None = None
    ours_data: str = ""
    table: str | None = None
    overrides: list[str] = field(default_factory=list)
    run_dir: str | None = None
    convert: dict[str, Any] = field(default_factory=dict)
    ours_step: int | None = None
    runs_note: str | None = None

    @property
    def ours_text(self) -> str:
        return "not run yet" if self.ours is None else f"{self.ours:.4f}"

    def command(self) -> str:
        """The run as a shell command line, rendered from the row's fields (words quoted with
        :func:`shlex.quote`, so it runs as shown)::

            binlearn train CONFIG [--set OVERRIDE ...] [--run-dir RUN_DIR]
                [&& binlearn convert RUN_DIR [--OPTION VALUE | --FLAG ...]]

        the convert options in ConvertSettings' order, a true bool as its flag; for a figure
        from several commands, the row's ``runs_note`` instead."""
        if self.runs_note is not None:
            return self.runs_note
        words = ["binlearn", "train", self.config, *[w for item in self.overrides for w in ("--set", item)],
                 *(["--run-dir", self.run_dir] if self.run_dir is not None else [])]
        line = shlex.join(words)
        if self.convert and self.run_dir is not None:  # the loader requires run_dir with convert
            convert = ["binlearn", "convert", self.run_dir, *_convert_options(self.convert)]
            line += " && " + shlex.join(convert)
        return line


def _convert_options(convert: dict[str, Any]) -> list[str]:
    """``binlearn convert``'s options for a row's ``convert`` table (ConvertSettings keyword
    values): ``--NAME VALUE`` with the name's ``_`` as ``-``, a bool as its flag when true (the
    bool settings are off by default), in ConvertSettings' field order."""
    from binlearn.artifacts.spiking import ConvertSettings

    options = []
    for name in ConvertSettings.__dataclass_fields__:
        if name not in convert:
            continue
        value, option = convert[name], "--" + name.replace("_", "-")
        if isinstance(value, bool):
            options += [option] if value else []
        else:
            options += [option, str(value)]
    return options


@dataclass(frozen=True)
class Table:
    """A table of docs/results.md: header cells and rows of markdown cells."""

    id: str
    columns: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [_line(self.columns), "|" + "---|" * len(self.columns)]
        lines += [_line(row) for row in self.rows]
        return "\n".join(lines)


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


_PIPE = re.compile(r"(?<!\\)\|")


def _cell(text: str) -> str:
    """A cell's text with its ``|`` escaped (a bare one would split the cell, even inside a code
    span) and its newlines as spaces (a table row is one line)."""
    return _PIPE.sub(r"\\|", text).replace("\n", " ")


@dataclass(frozen=True)
class Stats:
    """Mean ± sample sd (ddof = 1; None for one value) of ``n`` figures, in accuracy points."""

    n: int
    mean: float | None
    sd: float | None

    @classmethod
    def of(cls, points: list[float]) -> Stats:
        n = len(points)
        if n == 0:
            return cls(0, None, None)
        mean = sum(points) / n
        sd = math.sqrt(sum((p - mean) ** 2 for p in points) / (n - 1)) if n > 1 else None
        return cls(n, mean, sd)

    def text(self, signed: bool = False, unit: str = "") -> str:
        """``97.12 ± 0.05 UNIT (n=3)``, the sd as ``–`` for one value; ``not run yet`` for none."""
        if self.mean is None:
            return "not run yet"
        mean = f"{self.mean:+.2f}" if signed else f"{self.mean:.2f}"
        sd = "–" if self.sd is None else f"{self.sd:.2f}"
        return f"{mean} ± {sd}{' ' + unit if unit else ''} (n={self.n})"

    def record(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd}


@dataclass(frozen=True)
class CurvePoint:
    """One setting of a curve: a method at ``bits`` (None: not a b-bit method), its bits of
    learning state per synapse, the setting the validation figure chose and the test figures."""

    method: str
    bits: int | None
    bits_per_synapse: float
    chosen: str
    validation: float | None
    test: list[float]

    @property
    def stats(self) -> Stats:
        return Stats.of([100 * value for value in self.test])


@dataclass(frozen=True)
class Curve:
    """Accuracy against bits of learning state per synapse, measured by one command."""

    id: str
    title: str
    data: str
    machine: str
    command: str
    points: list[CurvePoint]
    note: str | None = None

    def methods(self) -> list[str]:
        """The methods in the order they first appear."""
        return list(dict.fromkeys(point.method for point in self.points))


@dataclass(frozen=True)
class Arm:
    """One arm of a claim: its row (config), its own --set items and its measured figures, one
    per seed of the claim in the claim's order."""

    row: str
    overrides: list[str] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    validation: list[float] = field(default_factory=list)

    @property
    def stats(self) -> Stats:
        """The test accuracies, in points."""
        return Stats.of([100 * value for value in self.test])


@dataclass(frozen=True)
class Claim:
    """A relative claim of a paper tested as a paired comparison of two arms, same data, epochs
    and schedule, several seeds (see the module docstring for the fields)."""

    id: str
    paper: str
    claim: str
    paper_difference: float
    within: float
    setting: str
    overrides: list[str]
    quick: list[str]
    seeds: list[int]
    float_arm: Arm
    binary_arm: Arm
    labels: tuple[str, str] = ("float", "binary")
    not_testable: str | None = None
    note: str | None = None

    @property
    def arms(self) -> dict[str, Arm]:
        """The arms by their key (``float``, ``binary``: the run directories' names), float first."""
        return {"float": self.float_arm, "binary": self.binary_arm}

    def settings(self, arm: str, seed: int, quick: bool = False) -> list[str]:
        """An arm's --set items for one seed: FAST_FIXED_POINT (for that setting), the claim's
        overrides, the arm's, the claim's quick items (``quick``), then ``seed=SEED``."""
        fast = list(FAST_FIXED_POINT) if self.setting == "fast_fixed_point" else []
        return [*fast, *self.overrides, *self.arms[arm].overrides, *(self.quick if quick else []),
                f"seed={seed}"]

    @property
    def differences(self) -> list[float]:
        """binary.test[i] − float.test[i] in points, over the seeds both arms have."""
        return [100 * (b - f) for f, b in zip(self.float_arm.test, self.binary_arm.test, strict=False)]

    @property
    def difference(self) -> Stats:
        return Stats.of(self.differences)

    @property
    def threshold(self) -> float:
        """The paired difference's mean at and above which the claim is met, in points."""
        return self.paper_difference - self.within

    @property
    def verdict(self) -> str:
        """``not testable here``, ``pending (k of n seeds)`` while an arm lacks a seed's figure,
        else ``met`` or ``not met`` (mean difference >= threshold, compared at 1e-9 points so
        that a difference on the threshold written in decimals counts as on it)."""
        if self.not_testable is not None:
            return "not testable here"
        done = min(len(self.float_arm.test), len(self.binary_arm.test))
        if done < len(self.seeds):
            return f"pending ({done} of {len(self.seeds)} seeds)"
        return meets(self.difference, self.threshold)

    def record(self) -> dict[str, Any]:
        """The claim, its statistics and verdict as a JSON-able record (``--claims --json``)."""
        arms = {key: {"label": label, "row": arm.row, "overrides": arm.overrides, "test": arm.test,
                      "validation": arm.validation, "test_points": arm.stats.record()}
                for (key, arm), label in zip(self.arms.items(), self.labels, strict=True)}
        return {"claim": self.id, "paper": self.paper, "what": self.claim, "setting": self.setting,
                "seeds": self.seeds, "overrides": self.overrides, **arms,
                "difference_points": {**self.difference.record(), "values": self.differences},
                "paper_difference": self.paper_difference, "within": self.within,
                "threshold": self.threshold, "verdict": self.verdict,
                "not_testable": self.not_testable, "note": self.note}


def meets(difference: Stats, threshold: float) -> str:
    """``met`` when the mean paired difference reaches ``threshold`` (points), else ``not met``."""
    assert difference.mean is not None
    return "met" if round(difference.mean - threshold, 9) >= 0 else "not met"


@dataclass(frozen=True)
class Results:
    path: Path
    rows: list[PaperRow]
    tables: dict[str, Table]
    claims: list[Claim] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    def claim(self, claim_id: str) -> Claim | None:
        """The claim of that id (None: not a claim)."""
        return next((c for c in self.claims if c.id == claim_id), None)

    def row(self, row_id: str) -> PaperRow:
        for row in self.rows:
            if row.id == row_id:
                return row
        stem = row_id.strip().strip("/").split("/")[-1]
        if stem in PAPERS:
            count = sum(r.paper == stem for r in self.rows)
            raise ConfigError(f"unknown row {row_id!r}: {stem} is a paper with {count} rows, named "
                              f"{stem}/NAME (binlearn reproduce --list shows them all)")
        ids = [*(r.id for r in self.rows), *(c.id for c in self.claims)]
        close = [found for found in ids if stem and stem in found]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown row {row_id!r}{hint} (binlearn reproduce --list shows them all)")

    @property
    def root(self) -> Path:
        """The repository the file belongs to (configs are relative to it)."""
        return _repository(self.path)


def _repository(results_file: Path) -> Path:
    """The repository a results file (REPO/docs/results.toml) belongs to."""
    return results_file.resolve().parent.parent


def _is_binlearn_checkout(folder: Path) -> bool:
    return (folder / "src" / "binlearn").is_dir() and (folder / "docs" / "results.toml").is_file()


def find_results_file(path: str | Path | None = None) -> Path:
    """``path``, else ``docs/results.toml`` of a binlearn checkout in the current folder (a
    worktree or a second clone is the one being worked on), else of the binlearn repository
    this package runs from (an editable install or a checkout on the path); a one-line
    ConfigError if none exists. Another project's docs/results.toml in the current folder is
    never taken for binlearn's."""
    if path is not None:
        candidate = Path(path)
        if candidate.is_dir():
            raise ConfigError(f"--results {candidate} is a folder; give the results TOML file itself")
        if not candidate.is_file():
            raise ConfigError(f"results file not found: {candidate}")
        return candidate
    if _is_binlearn_checkout(Path.cwd()):
        return Path("docs/results.toml")
    package = Path(__file__).resolve().parents[1]  # .../binlearn
    if package.parent.name == "src" and _is_binlearn_checkout(package.parent.parent):
        return package.parent.parent / "docs" / "results.toml"
    raise ConfigError("docs/results.toml not found: binlearn is not running from its repository (run "
                      "binlearn reproduce from a checkout of it, or give --results FILE)")


def _text(where: str, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__}")
    return value


def _strings(where: str, value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return list(value)


def _figure(where: str, value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1 \
            or math.isnan(value):
        raise ConfigError(f"{where}: {key} must be an accuracy in [0, 1], got {value!r}")
    return float(value)


_KINDS: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool, "str": str}


def _convert(where: str, value: Any) -> dict[str, Any]:
    """A row's ``convert`` table, checked now as the ConvertSettings it will become (names, types
    and ranges), so a bad value is an error when the file is read, not after a training run."""
    from binlearn.artifacts.spiking import ConvertSettings

    if not isinstance(value, dict):
        raise ConfigError(f"{where}: convert must be a table of binlearn convert settings")
    fields = {name: str(f.type) for name, f in ConvertSettings.__dataclass_fields__.items()}
    for key, item in value.items():
        if key not in fields:
            raise ConfigError(f"{where}: convert.{key} is not a convert setting; valid: "
                              f"{', '.join(sorted(fields))}")
        kind = _KINDS[fields[key]]
        if not isinstance(item, kind) or (isinstance(item, bool) and kind is not bool):
            raise ConfigError(f"{where}: convert.{key} must be {fields[key]}, got {item!r}")
    if value:
        try:
            ConvertSettings(**value)
        except ConfigError as error:
            raise ConfigError(f"{where}: convert: {error}") from None
    return dict(value)


def _step(where: str, value: Any, convert: dict[str, Any]) -> int | None:
    """``ours_step``: a step of the row's conversion (1..its timesteps)."""
    from binlearn.artifacts.spiking import ConvertSettings

    if value is None:
        return None
    if not convert:
        raise ConfigError(f"{where}: ours_step names a step of the spiking network, and the row has "
                          "no convert")
    timesteps = ConvertSettings(**convert).timesteps
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= timesteps:
        raise ConfigError(f"{where}: ours_step must be a step 1..{timesteps} (convert.timesteps), "
                          f"got {value!r}")
    return value


def _row_id(where: str, value: Any, paper: str) -> str:
    row_id = _text(where, value, "id")
    if not row_id.startswith(f"{paper}/") or not re.fullmatch(r"[\w.-]+", row_id[len(paper) + 1:]):
        raise ConfigError(f"{where}: id must be {paper}/NAME (the paper, then the config's stem), "
                          f"got {row_id!r}")
    return row_id


def _run(where: str, raw: dict[str, Any], convert: dict[str, Any]) -> dict[str, Any]:
    """A row's run fields: ``overrides`` and ``run_dir`` (the ``binlearn train`` command that
    measured the figure), or ``runs_note`` (several commands), checked against each other."""
    overrides = _strings(where, raw.get("overrides", []), "overrides")
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"{where}: overrides: {item!r} is not section.key=value")
    run_dir = None if raw.get("run_dir") is None else _text(where, raw["run_dir"], "run_dir")
    if run_dir is not None and not run_dir.strip():
        raise ConfigError(f"{where}: run_dir is empty (the run's --run-dir, e.g. runs/NAME)")
    runs_note = None if raw.get("runs_note") is None else _text(where, raw["runs_note"], "runs_note")
    if runs_note is not None:
        if not runs_note.strip():
            raise ConfigError(f"{where}: runs_note is empty (say where the commands are written down)")
        if "overrides" in raw or run_dir is not None:
            raise ConfigError(f"{where}: runs_note says the figure came from several commands; give it "
                              "without overrides and run_dir (they describe one command)")
    elif convert and run_dir is None:
        raise ConfigError(f"{where}: convert needs run_dir, the run directory binlearn convert reads "
                          "(the train command's --run-dir)")
    return {"overrides": overrides, "run_dir": run_dir, "runs_note": runs_note}


def _row(raw: Any, index: int) -> PaperRow:
    where = f"row {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    where = f"row {raw.get('id', index + 1)!r}"
    if "command" in raw:
        raise ConfigError(f"{where}: command is no longer a field: the run is given as data (overrides, "
                          "run_dir, convert; runs_note for a figure from several commands) and the "
                          "command is rendered from them")
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(_ROW_KEYS))}")
    missing = {"id", "paper", "config", "row", "paper_figure", "quick", "quick_note"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    paper = _text(where, raw["paper"], "paper")
    if paper not in PAPERS:
        raise ConfigError(f"{where}: unknown paper {paper!r}; valid: {', '.join(PAPERS)}")
    convert = _convert(where, raw.get("convert", {}))
    return PaperRow(
        id=_row_id(where, raw["id"], paper), paper=paper, config=_text(where, raw["config"], "config"),
        row=_text(where, raw["row"], "row"), paper_figure=_text(where, raw["paper_figure"], "paper_figure"),
        quick=_strings(where, raw["quick"], "quick"),
        quick_note=_text(where, raw["quick_note"], "quick_note"),
        paper_value=_figure(where, raw.get("paper_value"), "paper_value"),
        ours=_figure(where, raw.get("ours"), "ours"),
        ours_data=_text(where, raw.get("ours_data", ""), "ours_data"),
        table=None if raw.get("table") is None else _text(where, raw["table"], "table"),
        convert=convert, ours_step=_step(where, raw.get("ours_step"), convert), **_run(where, raw, convert))


def _table(raw: Any, index: int) -> Table:
    where = f"table {index + 1}"
    if not isinstance(raw, dict) or set(raw) != _TABLE_KEYS:
        raise ConfigError(f"{where}: a table has exactly the keys {', '.join(sorted(_TABLE_KEYS))}")
    where = f"table {raw['id']!r}"
    columns = _strings(where, raw["columns"], "columns")
    if not columns:
        raise ConfigError(f"{where}: columns is empty (a table needs at least one column)")
    if not isinstance(raw["rows"], list):
        raise ConfigError(f"{where}: rows must be a list of rows")
    rows = [_strings(where, row, "each row") for row in raw["rows"]]
    for number, row in enumerate(rows, 1):
        if len(row) != len(columns):
            raise ConfigError(f"{where}: row {number} has {len(row)} cells for {len(columns)} columns")
    return Table(_text(where, raw["id"], "id"), columns, rows)


def _number(where: str, value: Any, key: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ConfigError(f"{where}: {key} must be a number{bound} (accuracy points), got {value!r}")
    return float(value)


def _seeds(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in value):
        raise ConfigError(f"{where}: seeds must be a non-empty list of seeds (integers >= 0), got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: seeds repeats a seed: {value!r}")
    return list(value)


def _arm(where: str, raw: Any, key: str, seeds: list[int]) -> Arm:
    """An arm's table: its row, its --set items and its figures (at most one per seed)."""
    where = f"{where}: {key}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table {{row = ..., overrides = [...], test = [...], "
                          "validation = [...]}")
    unknown = set(raw) - _ARM_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(_ARM_KEYS))}")
    if "row" not in raw:
        raise ConfigError(f"{where}: missing row (the [[row]] id whose config the arm trains)")
    figures = {}
    for name in ("test", "validation"):
        values = raw.get(name, [])
        if not isinstance(values, list):
            raise ConfigError(f"{where}.{name} must be a list of accuracies, one per seed")
        if len(values) > len(seeds):
            raise ConfigError(f"{where}.{name} has {len(values)} figures for {len(seeds)} seeds "
                              f"{seeds} (one per seed, in their order)")
        checked = [_figure(where, v, f"{name}[{i}]") for i, v in enumerate(values)]
        figures[name] = [v for v in checked if v is not None]  # TOML has no null: all of them
    return Arm(row=_text(where, raw["row"], "row"), overrides=_settings(where, raw.get("overrides", [])),
               test=figures["test"], validation=figures["validation"])


def _settings(where: str, value: Any, key: str = "overrides") -> list[str]:
    """A list of ``section.key=value`` --set items."""
    items = _strings(where, value, key)
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"{where}: {key}: {item!r} is not section.key=value")
    return items


def _labels(where: str, value: Any) -> tuple[str, str]:
    labels = _strings(where, value, "labels")
    if len(labels) != 2 or not all(label.strip() for label in labels):
        raise ConfigError(f"{where}: labels must name the two arms, float's then binary's, got {value!r}")
    return labels[0], labels[1]


def _optional_text(where: str, raw: dict[str, Any], key: str) -> str | None:
    if raw.get(key) is None:
        return None
    text = _text(where, raw[key], key)
    if not text.strip():
        raise ConfigError(f"{where}: {key} is empty (leave it out instead)")
    return text


def _claim(raw: Any, index: int) -> Claim:
    where = f"claim {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    where = f"claim {raw.get('id', index + 1)!r}"
    unknown = set(raw) - _CLAIM_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(_CLAIM_KEYS))}")
    missing = _CLAIM_KEYS - {"labels", "not_testable", "note"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    paper = _text(where, raw["paper"], "paper")
    if paper not in PAPERS:
        raise ConfigError(f"{where}: unknown paper {paper!r}; valid: {', '.join(PAPERS)}")
    claim_id = _text(where, raw["id"], "id")
    if not claim_id.startswith(f"{paper}/") or not re.fullmatch(r"[\w.-]+", claim_id[len(paper) + 1:]):
        raise ConfigError(f"{where}: id must be {paper}/NAME (the paper, then the claim's name), "
                          f"got {claim_id!r}")
    setting = _text(where, raw["setting"], "setting")
    if setting not in SETTINGS:
        raise ConfigError(f"{where}: unknown setting {setting!r}; valid: {', '.join(SETTINGS)}")
    seeds = _seeds(where, raw["seeds"])
    return Claim(
        id=claim_id, paper=paper, claim=_text(where, raw["claim"], "claim"),
        paper_difference=_number(where, raw["paper_difference"], "paper_difference"),
        within=_number(where, raw["within"], "within", minimum=0), setting=setting,
        overrides=_settings(where, raw["overrides"]), quick=_settings(where, raw["quick"], "quick"),
        seeds=seeds, float_arm=_arm(where, raw["float"], "float", seeds),
        binary_arm=_arm(where, raw["binary"], "binary", seeds),
        labels=_labels(where, raw["labels"]) if "labels" in raw else ("float", "binary"),
        not_testable=_optional_text(where, raw, "not_testable"), note=_optional_text(where, raw, "note"))


def _check_claim(found: Path, claim: Claim, rows: dict[str, PaperRow]) -> None:
    """Each arm names a row of the file, and its settings (plain and --quick, first seed) load
    with that row's config, so a bad key is an error when the file is read, not mid-claim."""
    from binlearn.experiment.config import load_config

    for key, arm in claim.arms.items():
        if arm.row not in rows:
            raise ConfigError(f"{found}: claim {claim.id!r}: {key}.row {arm.row!r} is not a row of the file")
        config = _repository(found) / rows[arm.row].config
        if not config.is_file():
            continue
        for quick in (False, True):
            try:
                load_config(config, claim.settings(key, claim.seeds[0], quick))
            except ConfigError as error:
                what = "overrides and quick" if quick else "overrides"
                raise ConfigError(f"{found}: claim {claim.id!r}: {key} arm's {what}: {error}") from None


def load_results(path: str | Path | None = None) -> Results:
    """Read and check the results file (one-line ConfigError for anything malformed)."""
    found = find_results_file(path)
    try:
        raw = parse_toml(found.read_text(), str(found))
    except OSError as error:
        raise ConfigError(f"{found}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{found}: not valid TOML ({error})") from None
    unknown = set(raw) - {"row", "table", "claim", "curve"}
    if unknown:
        raise ConfigError(f"{found}: unknown top-level key {sorted(unknown)[0]!r}; valid: row, table, claim, "
                          "curve")
    for key in ("row", "table", "claim", "curve"):
        if not isinstance(raw.get(key, []), list):
            raise ConfigError(f"{found}: {key} must be an array of tables ([[{key}]] blocks), got "
                              f"{type(raw[key]).__name__}")
    rows = [_row(r, i) for i, r in enumerate(raw.get("row", []))]
    tables = [_table(t, i) for i, t in enumerate(raw.get("table", []))]
    by_id = {t.id: t for t in tables}
    if len(by_id) != len(tables):
        raise ConfigError(f"{found}: two tables share an id")
    if len({r.id for r in rows}) != len(rows):
        raise ConfigError(f"{found}: two rows share an id")
    for row in rows:
        if row.table is not None and row.table not in by_id and row.table not in _SUMMARY_IDS:
            raise ConfigError(f"{found}: row {row.id!r} cites table {row.table!r}, which the file does "
                              "not have")
        _check_overrides(found, row)
    if _CLAIMS_ID in by_id:
        raise ConfigError(f"{found}: table id {_CLAIMS_ID!r} is the generated table of the claims; "
                          "name the table otherwise")
    claims = [_claim(c, i) for i, c in enumerate(raw.get("claim", []))]
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{found}: two claims share an id")
    by_row = {r.id: r for r in rows}
    for claim in claims:
        if claim.id in by_row:
            raise ConfigError(f"{found}: claim {claim.id!r} has the id of a row (reproduce ID would not "
                              "know which to run)")
        _check_claim(found, claim, by_row)
    curves = [_curve(c, i) for i, c in enumerate(raw.get("curve", []))]
    if len({c.id for c in curves}) != len(curves):
        raise ConfigError(f"{found}: two curves share an id")
    for curve in curves:
        if f"curve-{curve.id}" in by_id:
            raise ConfigError(f"{found}: table id 'curve-{curve.id}' is the generated table of curve "
                              f"{curve.id!r}; name the table otherwise")
    return Results(found, rows, by_id, claims, curves)


def _curve_point(where: str, raw: Any, index: int) -> CurvePoint:
    where = f"{where}: point {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(raw) - _POINT_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(_POINT_KEYS))}")
    missing = {"method", "bits_per_synapse", "chosen", "test"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    bits = raw.get("bits")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits < 1):
        raise ConfigError(f"{where}: bits must be a positive integer, got {bits!r}")
    test = raw["test"]
    if not isinstance(test, list):
        raise ConfigError(f"{where}: test must be a list of accuracies, got {test!r}")
    figures = [_figure(where, value, "test") for value in test]
    validation = _figure(where, raw["validation"], "validation") if "validation" in raw else None
    return CurvePoint(method=_text(where, raw["method"], "method"), bits=bits,
                      bits_per_synapse=_number(where, raw["bits_per_synapse"], "bits_per_synapse", minimum=1),
                      chosen=_text(where, raw["chosen"], "chosen"), validation=validation,
                      test=[value for value in figures if value is not None])


def _curve(raw: Any, index: int) -> Curve:
    where = f"curve {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    where = f"curve {raw.get('id', index + 1)!r}"
    unknown = set(raw) - _CURVE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(sorted(_CURVE_KEYS))}")
    missing = _CURVE_KEYS - {"note"} - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    curve_id = _text(where, raw["id"], "id")
    if not re.fullmatch(r"[\w.-]+", curve_id):
        raise ConfigError(f"{where}: id must be letters, digits, '.', '_' or '-', got {curve_id!r}")
    points = raw["points"]
    if not isinstance(points, list):
        raise ConfigError(f"{where}: points must be an array of tables")
    return Curve(id=curve_id, title=_text(where, raw["title"], "title"),
                 data=_text(where, raw["data"], "data"), machine=_text(where, raw["machine"], "machine"),
                 command=_text(where, raw["command"], "command"),
                 points=[_curve_point(where, point, i) for i, point in enumerate(points)],
                 note=_optional_text(where, raw, "note"))


def _check_overrides(found: Path, row: PaperRow) -> None:
    """A row's overrides load with its config (every key is a key of that config, every value
    of its type), so a bad one is an error when the file is read, not after a training run.
    Where the config is not there (reproduce refuses the row then), they are not checked."""
    from binlearn.experiment.config import load_config

    config = _repository(found) / row.config
    if row.overrides and config.is_file():
        try:
            load_config(config, row.overrides)
        except ConfigError as error:
            raise ConfigError(f"{found}: row {row.id!r}: overrides: {error}") from None


def summary_table(results: Results, paper: str) -> Table:
    """The generated paper-vs-ours table of one paper: one line per config."""
    rows = []
    for row in results.rows:
        if row.paper != paper:
            continue
        ours = "not run yet" if row.ours is None else f"**{row.ours:.4f}**: {row.ours_data}"
        rows.append([f"`{row.id}`", row.row, row.paper_figure, ours, f"`{row.command()}`"])
    return Table(f"summary-{paper}", ["row", "what", "paper", "ours (last measured)", "command"], rows)


def claims_table(results: Results) -> Table:
    """The generated table of the claims: each arm's test accuracy and the paired difference
    (mean ± sample sd over the seeds, in points), the paper's difference and the verdict."""
    rows = []
    for claim in results.claims:
        first, second = claim.labels
        arms = [f"{label}, `{arm.row.split('/', 1)[1]}`: {arm.stats.text()}"
                for label, arm in zip(claim.labels, claim.arms.values(), strict=True)]
        rows.append([f"`{claim.id}`", claim.claim, claim.setting, *arms,
                     f"{second} − {first}: {claim.difference.text(signed=True)}",
                     f"{claim.paper_difference:+.1f} (met at ≥ {claim.threshold:+.1f})",
                     claim.verdict + (f": {claim.not_testable}" if claim.not_testable else "")])
    columns = ["claim", "the paper's claim", "relaxation", "float arm, test %", "binary arm, test %",
               "paired difference, points", "paper, points", "verdict"]
    return Table(_CLAIMS_ID, columns, rows)


def curve_table(curve: Curve) -> Table:
    """The generated table of one curve: a line per point, best first within each method."""
    rows = [[point.method, "–" if point.bits is None else str(point.bits), f"{point.bits_per_synapse:g}",
             f"`{point.chosen}`", "–" if point.validation is None else f"{point.validation:.4f}",
             ", ".join(f"{value:.4f}" for value in point.test) or "not run yet", point.stats.text()]
            for point in curve.points]
    columns = ["method", "b", "bits per synapse", "setting (chosen on validation)", "validation (seed 0)",
               "test, per seed", "test %, mean ± sd"]
    return Table(f"curve-{curve.id}", columns, rows)


def replace_marked_blocks(text: str, begin: re.Pattern[str], end_line: str, render: Callable[[str], str],
                          unclosed: Callable[[str, int | None], Exception]) -> str:
    """``text`` with the lines between every ``begin`` marker (its group 1 names the block) and
    the next ``end_line`` replaced by ``render(name)``; the markers stay. A block whose next marker
    is another ``begin`` (its 0-based line index) or that runs to the end of the text (None)
    raises ``unclosed(name, that index)``. Shared by docs/results.md's tables and the generated
    reference pages (:mod:`binlearn.reference_pages`)."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        found = begin.match(line)
        if found is None:
            continue
        name = found.group(1)
        block = render(name)
        end = next((i for i in range(index, len(lines))
                    if lines[i] == end_line or begin.match(lines[i])), None)
        if end is None or lines[end] != end_line:
            raise unclosed(name, end)
        out.append(block)
        out.append(end_line)
        index = end + 1
    return "\n".join(out)


def render_markdown(text: str, results: Results, name: str = "docs/results.md") -> str:
    """``text`` (docs/results.md) with every marked table replaced by its rendering from the
    results file. Raises ConfigError for a marker of an unknown table or an unclosed one."""

    def render(table_id: str) -> str:
        if table_id in _SUMMARY_IDS:
            return summary_table(results, _SUMMARY_IDS[table_id]).markdown()
        if table_id == _CLAIMS_ID:
            return claims_table(results).markdown()
        curve = next((c for c in results.curves if f"curve-{c.id}" == table_id), None)
        if curve is not None:
            return curve_table(curve).markdown()
        if table_id in results.tables:
            return results.tables[table_id].markdown()
        raise ConfigError(f"{name} marks table {table_id!r}, which {results.path} does not have")

    def unclosed(table_id: str, end: int | None) -> ConfigError:
        before = "the end of the file" if end is None else f"line {end + 1}, the next table's marker"
        return ConfigError(f"{name}: table {table_id!r} has no '{_END}' line before {before}")

    return replace_marked_blocks(text, _BEGIN, _END, render, unclosed)


def marked_tables(text: str) -> list[str]:
    """The table ids docs/results.md marks, in order."""
    return [m.group(1) for line in text.split("\n") if (m := _BEGIN.match(line))]


def write_docs(results: Results, markdown: Path, figure: Path,
               claims_figure: Path | None = None, curves_figure: Path | None = None) -> list[Path]:
    """Re-render ``markdown``'s tables, the overview figure and (where the file has claims and
    ``claims_figure`` is given) the claims figure; returns the files written. Everything is
    checked and rendered before anything is written; a file that cannot be read or written is a
    one-line ConfigError."""
    if not results.rows:  # nothing to draw: refused before anything (a figures/ folder) is made
        raise ConfigError(f"--write-docs: {results.path} has no [[row]]: there is no paper row to render "
                          "into the overview figure")
    figures = [(figure, plot_overview)]
    if claims_figure is not None and results.claims:
        figures.append((claims_figure, plot_claims))
    if curves_figure is not None and results.curves:
        figures.append((curves_figure, plot_curves))
    staged = [path.with_name(f".{path.name}.staged.tmp") for path, _ in figures]
    try:
        text = render_markdown(markdown.read_text(), results, str(markdown))
        for (path, plot), stage in zip(figures, staged, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            plot(results, stage)  # the figures wait until the page is written
        atomic_write_text(markdown, text)
        for (path, _), stage in zip(figures, staged, strict=True):
            os.replace(stage, path)
    except (OSError, UnicodeDecodeError) as error:
        for stage in staged:
            with contextlib.suppress(OSError):
                stage.unlink(missing_ok=True)
        where = getattr(error, "filename", None) or markdown
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"--write-docs: {where}: {reason}") from None
    return [markdown, *(path for path, _ in figures)]


def plot_overview(results: Results, path: Path) -> None:
    """Paper vs ours for every row, one panel per paper: our last measured figure as a bar, the
    paper's figure (where it gives a number) as a black mark; rows not run yet are labelled."""
    from binlearn.experiment.plots import pyplot, save_png

    plt = pyplot()
    groups = [(paper, [r for r in results.rows if r.paper == paper]) for paper in PAPERS]
    groups = [(paper, rows) for paper, rows in groups if rows]
    heights = [max(len(rows), 1) for _, rows in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 0.32 * sum(heights) + 1.2 * len(groups)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (paper, rows) in zip(axes[:, 0], groups, strict=True):
        positions = list(range(len(rows)))[::-1]
        for y, row in zip(positions, rows, strict=True):
            if row.ours is not None:
                ax.barh(y, row.ours, color="tab:blue", height=0.6)
                ax.text(row.ours + 0.003, y, f"{row.ours:.4f}", va="center", fontsize=7)
            else:
                ax.text(0.805, y, "not run yet", va="center", fontsize=7, color="0.4")
            if row.paper_value is not None:
                ax.plot([row.paper_value], [y], marker="|", color="black", markersize=12, mew=2)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_yticks(positions)
        ax.set_yticklabels([r.id.split("/", 1)[1] for r in rows], fontsize=7)
        ax.set_xlim(0.8, 1.0)
        ax.set_title(PAPERS[paper], fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("test accuracy (bar: ours, last measured; black mark: the paper's figure; "
                           "x axis from 0.8)", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def plot_claims(results: Results, path: Path) -> None:
    """One line per claim: the paired difference (second arm − first, in points) as a dot with
    an error bar of ± its sample sd, the paper's difference as a black mark and the ``within``
    band around it shaded (met: the dot at or right of the band's left edge), the verdict beside
    it; a pending claim is drawn with the seeds it has, one with none labelled "not run yet"."""
    from binlearn.experiment.plots import pyplot, save_png

    plt = pyplot()
    claims = results.claims
    edges = [-3.0, 1.5]
    for claim in claims:
        edges += [claim.threshold - 0.5, claim.paper_difference + claim.within + 0.5]
        stats = claim.difference
        if stats.mean is not None:
            edges += [stats.mean - (stats.sd or 0) - 0.5, stats.mean + (stats.sd or 0) + 0.5]
    low, high = min(edges), max(edges)
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(claims), 1) + 1.4))
    positions = list(range(len(claims)))[::-1]
    ax.axvline(0, color="0.7", linewidth=0.8, linestyle=":", zorder=0)
    for y, claim in zip(positions, claims, strict=True):
        ax.fill_betweenx([y - 0.3, y + 0.3], claim.threshold, claim.paper_difference + claim.within,
                         color="tab:green", alpha=0.15, linewidth=0)
        ax.plot([claim.paper_difference], [y], marker="|", color="black", markersize=14, mew=2)
        stats = claim.difference
        if stats.mean is not None:
            ax.errorbar([stats.mean], [y], xerr=[stats.sd or 0], fmt="o", color="tab:blue", capsize=3,
                        markersize=5)
        label = "not run yet" if stats.mean is None and claim.not_testable is None else claim.verdict
        ax.text(1.01, y, label, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=7,
                color="0.35")  # the verdict, in a column right of the axes, clear of the bands
    ax.set_xlim(low, high)
    ax.set_ylim(-0.6, len(claims) - 0.4)
    ax.set_yticks(positions)
    names = [f"{c.id.split('/', 1)[1]} ({c.labels[1]} − {c.labels[0]})" for c in claims]
    ax.set_yticklabels(names, fontsize=7)
    ax.set_title("Claims as paired comparisons (binlearn reproduce --claims)", fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("paired test-accuracy difference, points (dot: mean over the seeds ± sample sd)\n"
                  "black mark: the paper's difference; shaded: ± within (met at or right of its left edge)",
                  fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


_METHOD_STYLE = {"bop": ("Bop (float32 momentum)", "black", "s"), "counter": ("counter", "tab:blue", "o"),
                 "hidden_int": ("hidden integer weight", "tab:orange", "^"),
                 "local_binary": ("local binary rule (its own hidden integers)", "tab:green", "D")}


def plot_curves(results: Results, path: Path) -> None:
    """One panel per curve: the mean test accuracy ± sample sd against bits of learning state
    per synapse (log scale), one line per method; each panel names its data, machine and command."""
    from binlearn.experiment.plots import pyplot, save_png

    plt = pyplot()
    curves = results.curves
    fig, axes = plt.subplots(1, max(len(curves), 1), figsize=(5.2 * max(len(curves), 1), 4.6), squeeze=False)
    for ax, curve in zip(axes[0], curves, strict=False):
        for method in curve.methods():
            points = sorted((p for p in curve.points if p.method == method and p.test),
                            key=lambda p: p.bits_per_synapse)
            if not points:
                continue
            label, color, marker = _METHOD_STYLE.get(method, (method, "tab:gray", "x"))
            xs = [p.bits_per_synapse for p in points]
            means = [p.stats.mean for p in points]
            sds = [p.stats.sd or 0.0 for p in points]
            if method == "bop" and means[0] is not None:  # the targets: within 1 and 2 points of Bop
                for gap, style in ((1, "--"), (2, ":")):
                    ax.axhline(means[0] - gap, color="0.5", linewidth=0.8, linestyle=style)
                    ax.text(1.0, means[0] - gap, f" Bop − {gap}", transform=ax.get_yaxis_transform(),
                            fontsize=6, color="0.4", va="center", ha="left")
            separate = len(set(xs)) < len(xs)  # several variants at one x: markers, each labelled
            ax.errorbar(xs, means, yerr=sds, color=color, marker=marker, capsize=3, markersize=5,
                        label=label, linewidth=1.2, linestyle="none" if separate else "-")
            if separate:
                for point, mean in zip(points, means, strict=True):
                    ax.annotate(point.chosen, (point.bits_per_synapse, mean), textcoords="offset points",
                                xytext=(5, -3), fontsize=6, color=color)
        ax.set_xscale("log", base=2)
        ticks = sorted({p.bits_per_synapse for p in curve.points})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("bits of learning state per synapse (log scale)", fontsize=8)
        ax.set_ylabel("test accuracy, % (mean ± sd over the seeds)", fontsize=8)
        ax.set_title(curve.title, fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax.text(0.0, -0.2, f"{curve.data}\n{curve.machine}\n{curve.command}", transform=ax.transAxes,
                fontsize=6, va="top", color="0.35")
    fig.tight_layout()
    save_png(fig, path)
