"""binlearn: binary neural networks trained with local learning rules and run as spiking
networks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
