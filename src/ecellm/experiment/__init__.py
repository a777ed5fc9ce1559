"""``ecellm experiment``: the paper's four experiments (Tables 2-5) from one YAML file.

Build the data, train every run, predict every test set with every run and untuned base,
score in paper and strict modes with bootstrap intervals, and write the report; every step is
cached by the hash of its inputs so a rerun or an interrupted run continues where it stopped.
"""

from ecellm.experiment.config import ExperimentConfig, load_experiment
from ecellm.experiment.runner import run_experiment

__all__ = ["ExperimentConfig", "load_experiment", "run_experiment"]
