"""A trained run and what it becomes: :func:`load_trained` reads a run directory once into a
:class:`TrainedRun` (its config, checkpoint epoch, learner with a typed model, and the data
encoded as in training); from there a run is evaluated, exported as packed bits
(:func:`export_run`, :func:`infer_export`), converted to a spiking network and simulated
(:func:`convert_run`), or written as NIR."""

from binlearn.artifacts.export import EXPORT_FORMATS, export_run, infer_export
from binlearn.artifacts.spiking import ConvertSettings, convert_run
from binlearn.artifacts.trained import TrainedRun, evaluate_run, load_trained

__all__ = ["TrainedRun", "load_trained", "evaluate_run", "export_run", "infer_export", "EXPORT_FORMATS",
           "ConvertSettings", "convert_run"]
