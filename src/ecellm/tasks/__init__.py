"""The task families (ECInstruct, ShopBench), their registry and their listing."""

from ecellm.tasks.base import Invalid, Task
from ecellm.tasks.describe import describe_tasks
from ecellm.tasks.registry import all_tasks, get_task, task_abbrs

__all__ = ["Invalid", "Task", "all_tasks", "describe_tasks", "get_task", "task_abbrs"]
