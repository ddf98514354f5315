"""binlearn: binary neural networks trained with local learning rules and run as spiking
networks."""

from binlearn.version import __version__

__all__ = ["__version__"]
