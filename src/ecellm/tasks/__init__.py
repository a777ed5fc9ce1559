"""The ten ECInstruct tasks and their registry."""

from ecellm.tasks.base import Invalid, Task
from ecellm.tasks.registry import all_tasks, get_task, task_abbrs

__all__ = ["Invalid", "Task", "all_tasks", "get_task", "task_abbrs"]
