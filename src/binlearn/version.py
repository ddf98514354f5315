"""The package version, on the ground floor so that any layer may record it (packed-model
manifests, run metadata) without importing the package root."""

__version__ = "0.1.0"

__all__ = ["__version__"]
