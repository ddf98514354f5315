"""The public API: ``binlearn`` re-exports each package's public names, every ``__all__``
entry exists, and ``import binlearn`` alone stays light (no torch)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import binlearn

PACKAGES = ["binlearn.data", "binlearn.binary", "binlearn.binary.kernels", "binlearn.binary.packed_format",
            "binlearn.nn", "binlearn.nn.packed", "binlearn.energy", "binlearn.energy.packed",
            "binlearn.rules", "binlearn.rules.packed", "binlearn.experiment", "binlearn.artifacts",
            "binlearn.reproduce", "binlearn.atomic",
            "binlearn.errors"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_exists(name):
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists missing names {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ has duplicates"


def test_the_root_reexports_each_package_s_own_public_names():
    assert set(binlearn.__all__) == {"__version__", *binlearn._EXPORTS}
    for name, package in binlearn._EXPORTS.items():
        module = importlib.import_module(package)
        assert name in module.__all__, f"{package} does not list {name} as public"
        assert getattr(binlearn, name) is getattr(module, name), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        binlearn.nothing  # noqa: B018


def test_readme_names_come_from_the_root():
    from binlearn import EP, BinaryWeights, Bop, fully_connected, load_dataset, prepare, relax  # noqa: F401


def test_import_binlearn_is_light():
    code = "import sys, binlearn; print(binlearn.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [binlearn.__version__, "False"]


def test_every_error_of_binlearn_is_a_binlearn_error_and_the_cli_catches_only_that():
    """One base class for user errors (binlearn.errors): each exception class any module of
    binlearn defines derives from it, and the CLI's handler names that one type."""
    import ast
    import pkgutil
    from pathlib import Path

    from binlearn.errors import BinlearnError

    defined = {}
    for info in pkgutil.walk_packages(binlearn.__path__, "binlearn."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__.startswith("binlearn")):
                defined[f"{value.__module__}.{value.__qualname__}"] = value
    assert len(defined) >= 10, sorted(defined)
    # KeyboardInterrupt subclasses are how a stop travels (SIGTERM as Ctrl-C), warnings are not raised
    errors = {name: kind for name, kind in defined.items()
              if not issubclass(kind, KeyboardInterrupt | Warning)}
    strays = sorted(name for name, kind in errors.items() if not issubclass(kind, BinlearnError))
    assert not strays, f"exception classes that do not derive from BinlearnError: {strays}"
    assert binlearn.BinlearnError is BinlearnError

    cli = ast.parse(Path(binlearn.__file__).with_name("cli.py").read_text())
    entry = next(node for node in ast.walk(cli) if isinstance(node, ast.FunctionDef) and node.name == "_main")
    caught = [ast.unparse(handler.type) for handler in ast.walk(entry)
              if isinstance(handler, ast.ExceptHandler) and handler.type is not None]
    # the user errors, then memory (a message) and the reader leaving or a stop (not errors)
    assert caught == ["BinlearnError", "(RuntimeError, MemoryError)", "BrokenPipeError", "KeyboardInterrupt"]
