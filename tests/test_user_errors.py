"""The probe of issue 25, kept: one row per user-error case — (case id, argv, expected exit
code, expected start of stderr's one line) — run through ``binlearn.cli.main`` in-process.

The ids are the issue's where it gave one (X18b, CV18, E133, ...), else a short name. A case
asserted exactly by another test is still a row here (so this table is the one list of cases
and outcomes); ``REFERENCED`` names the rows that cannot be an argv and the test that holds them.
Paths in argv are written with placeholders: ``{run}`` a trained run directory (the local-rule
digits quickstart, one epoch), ``{packed}`` its packed export, ``{file}`` a regular file,
``{dir}`` an empty directory, ``{tmp}`` a fresh folder of the case, ``{cfg}`` the configs/
folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from binlearn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ERROR = "binlearn: error: "
DEEP = "[" * 3000 + "]" * 3000
OUT = ERROR + "--output"

CASES = [
    # output paths: under a regular file, in a missing folder (created: exit 0), a directory
    ("export-output-under-file", ["export", "{run}", "--output", "{file}/m.packed.npz"], 2, OUT),
    ("export-output-missing-folder", ["export", "{run}", "--output", "{tmp}/missing/m.packed.npz"],
     0, None),
    ("export-output-directory", ["export", "{run}", "--output", "{dir}"], 2, OUT),
    ("export-nir-output-under-file", ["export", "{run}", "--format", "nir", "--output", "{file}/m.nir"], 2,
     OUT),
    ("export-nir-output-missing-folder", ["export", "{run}", "--format", "nir", "--output",
                                          "{tmp}/missing/m.nir"], 0, None),
    ("export-nir-output-directory", ["export", "{run}", "--format", "nir", "--output", "{dir}"], 2,
     OUT),
    ("infer-output-under-file", ["infer", "{packed}", "--output", "{file}/p.npy"], 2, OUT),
    ("infer-output-missing-folder", ["infer", "{packed}", "--output", "{tmp}/missing/p.npy"],
     0, None),
    ("infer-output-directory", ["infer", "{packed}", "--output", "{dir}"], 2, OUT),
    ("convert-output-under-file", ["convert", "{run}", "--quiet", "--output", "{file}/s"], 2, OUT),
    ("convert-output-missing-folder", ["convert", "{run}", "--quiet", "--output", "{tmp}/missing/s.json"],
     0, None),
    ("convert-output-directory", ["convert", "{run}", "--quiet", "--output", "{dir}"], 0, None),
    ("compare-output-txt", ["compare", "{run}", "--output", "{tmp}/curve.txt"], 2, OUT),
    # files that are there but wrong
    ("compare-string-accuracy", ["compare", "{tmp}/edited"], 2,
     ERROR + "{tmp}/edited/metrics.jsonl, epoch 1"),
    ("convert-compare-bad-spiking", ["convert", "{run}", "--quiet", "--compare", "{file}"], 2,
     ERROR + "--compare: {file} is not a spiking.json file"),
    ("resume-meta-is-directory", ["train", "--resume", "{tmp}/meta-dir", "--quiet"], 2,
     ERROR + "{tmp}/meta-dir/meta.json is not a file"),
    ("resume-metrics-is-directory", ["train", "--resume", "{tmp}/metrics-dir", "--quiet"], 2,
     ERROR + "{tmp}/metrics-dir/metrics.jsonl is not a file"),
    # deep nesting (C41, C42, E133)
    ("C41", ["train", "{tmp}/deep.toml", "--quiet"], 2, ERROR),
    ("C42", ["train", "--set", f"train.epochs={DEEP}", "--quiet"], 2, ERROR),
    ("E133", ["infer", "{tmp}/deep.packed.npz"], 2, ERROR + "{tmp}/deep.packed.npz"),
    # huge values (X18b, X20, X35b, X39, X36b)
    ("X18b", ["train", "{cfg}/baselines/digits-ste-binary-mlp.toml", "--set", "optimizer.weight_decay=1e300"],
     2, ERROR + "optimizer.weight_decay is too large"),
    ("X20", ["train", "{cfg}/laydevant2021/fc-binary-weights.toml", "--set", "model.gain=1e300"], 2,
     ERROR + "model.gain is too large"),
    ("X35b", ["train", "{cfg}/laydevant2021/fc-binary-weights.toml", "--set",
              "optimizer.scale_learning_rate=1e308"], 2,
     ERROR + "optimizer.scale_learning_rate is too large"),
    ("X39", ["train", "{cfg}/quickstart/digits-local-binary.toml", "--set", "rule.robustness=1e300"], 2,
     ERROR + "rule.robustness is too large"),
    ("X36b", ["train", "{cfg}/quickstart/digits-local-binary.toml", "--set", "model.init_std=1e9"], 2,
     ERROR + "model.init_std"),
    ("CV18", ["convert", "{run}", "--quiet", "--timesteps", "99999999999999999999"], 2,
     ERROR + "--timesteps must be <= 100,000"),
    ("CV46", ["convert", "{run}", "--quiet", "--batch-size", "99999999999999999999"], 2,
     ERROR + "--batch-size must be <= 10,000,000"),
    ("CV48", ["convert", "{run}", "--quiet", "--seed", str(2**70)], 2, ERROR + "--seed must be <="),
    ("npy-beyond-float32", ["train", "--quiet", "--run-dir", "{tmp}/r", "--set", 'data.dataset="npy"',
                            "--set", 'data.features="{tmp}/features"'], 2,
     ERROR + "{tmp}/features/x_train.npy holds values beyond float32's range"),
    ("reproduce-no-rows", ["reproduce", "--write-docs", "--results", "{tmp}/results.toml"], 2, ERROR),
]

REFERENCED = {
    "manifest-dynamics-steps-1e9": "tests/test_messages.py (validate_dynamics with steps=10**9)",
}
"""Cases no argv here can reach cheaply (an energy net's packed export), asserted elsewhere."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained run (the local-rule digits quickstart, one epoch: the STE baseline's
    float activations can be neither packed nor converted) and its packed export."""
    root = tmp_path_factory.mktemp("trained")
    run = root / "run"
    assert main(["train", str(CONFIGS / "quickstart/digits-local-binary.toml"), "--quiet",
                 "--run-dir", str(run), "--set", "train.epochs=1", "--set", "train.threads=1"]) == 0
    assert main(["export", str(run), "--output", str(root / "m.packed.npz"), "--quiet"]) == 0
    return {"run": run, "packed": root / "m.packed.npz"}


def _prepare(case: str, tmp: Path, run: Path) -> None:
    """The files a case reads, made in its own folder ``tmp``."""
    if case == "compare-string-accuracy":
        shutil.copytree(run, tmp / "edited")
        records = [json.loads(line) for line in (tmp / "edited/metrics.jsonl").read_text().splitlines()]
        records[0]["test_accuracy"] = "0.5"
        (tmp / "edited/metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    elif case in ("resume-meta-is-directory", "resume-metrics-is-directory"):
        name = "meta.json" if case.startswith("resume-meta") else "metrics.jsonl"
        copy = tmp / ("meta-dir" if name == "meta.json" else "metrics-dir")
        shutil.copytree(run, copy)
        (copy / name).unlink()
        (copy / name).mkdir()
    elif case == "C41":
        (tmp / "deep.toml").write_text(f"[train]\nepochs = {DEEP}\n")
    elif case == "E133":
        import zipfile

        with zipfile.ZipFile(tmp / "deep.packed.npz", "w") as archive:
            archive.writestr("manifest.json", "[" * 200000 + "]" * 200000)
    elif case == "npy-beyond-float32":
        (tmp / "features").mkdir()
        x = np.zeros((4, 3))
        x[0, 0] = 1e39
        for name, array in {"x_train": x, "y_train": np.arange(4) % 2, "x_test": np.zeros((2, 3)),
                            "y_test": np.zeros(2, dtype=np.int64)}.items():
            np.save(tmp / "features" / f"{name}.npy", array)
    elif case == "reproduce-no-rows":
        (tmp / "results.toml").write_text("")


@pytest.mark.parametrize(("case", "argv", "code", "start"), CASES, ids=[c[0] for c in CASES])
def test_user_error(case, argv, code, start, trained, tmp_path, capsys):
    (tmp_path / "file").write_text("a regular file\n")
    (tmp_path / "dir").mkdir()
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    _prepare(case, case_dir, trained["run"])
    names = {"run": trained["run"], "packed": trained["packed"], "file": tmp_path / "file",
             "dir": tmp_path / "dir", "tmp": case_dir, "cfg": CONFIGS}
    argv = [arg.format(**names) for arg in argv]
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    if start is None:  # works today: a missing output folder is created, convert --output is a folder
        assert ERROR not in err, err
        return
    assert err.count("\n") == 1, err  # one line
    assert err.startswith(start.format(**names)), err


def test_each_case_id_once():
    ids = [case[0] for case in CASES] + list(REFERENCED)
    assert len(ids) == len(set(ids))
