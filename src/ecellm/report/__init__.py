"""Reports: our scores beside the eCeLLM paper's Tables 2-4, as markdown, JSON, CSV and PNG."""

from ecellm.report.build import make_report
from ecellm.report.inputs import Run, TaskResult, load_runs
from ecellm.report.paper import paper_tables, table_specs
from ecellm.report.tables import Row, Table, build_tables

__all__ = [
    "Row",
    "Run",
    "Table",
    "TaskResult",
    "build_tables",
    "load_runs",
    "make_report",
    "paper_tables",
    "table_specs",
]
