"""Scoring: paper mode (the reference's numbers, defects included) and strict mode (corrected).

``evaluate(samples, predictions)`` joins predictions to samples by id and returns one row per
(task, setting); ``load_predictions`` reads ecellm JSONL or the reference's positional files.
"""

from ecellm.evaluate.evaluator import evaluate
from ecellm.evaluate.predictions import load_predictions

__all__ = ["evaluate", "load_predictions"]
