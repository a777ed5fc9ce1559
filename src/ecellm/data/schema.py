"""The sample schema of the data layer: :class:`Sample` and the split and setting names.

They are defined in :mod:`ecellm.tasks.sample`, beside :class:`~ecellm.tasks.base.Task` (a
sample's task is validated against the task registry), and re-exported here for the data layer
and its users; the data layer imports the tasks, never the other way round.
"""

from __future__ import annotations

from ecellm.tasks.sample import SETTINGS, SPLITS, Sample

__all__ = ["SETTINGS", "SPLITS", "Sample"]
