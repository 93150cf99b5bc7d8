"""The experiment layer: an ini file read, validated and expanded into runs. Standard library only."""

from mosaic.experiment.ini import load_experiment
from mosaic.experiment.model import Experiment, Module, Monitor, Process, Run

__all__ = ["Experiment", "Module", "Monitor", "Process", "Run", "load_experiment"]
