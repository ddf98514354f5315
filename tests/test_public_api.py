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
            "binlearn.rules", "binlearn.rules.packed", "binlearn.experiment", "binlearn.atomic"]


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
