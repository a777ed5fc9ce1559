"""One exception type for bad user input, so every message names file, record and field."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user must fix.

    The message always starts with the file and, when known, the record (1-based line or
    list index) and the field, so the CLI can print it as a single line.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: int | str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.record = record
        self.field = field
        self.detail = message
        where = []
        if file is not None:
            where.append(str(file))
        if record is not None:
            where.append(f"record {record}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message)


class EnvironmentProblem(RuntimeError):
    """The machine, not the command, is at fault: a missing optional package, an unreachable or
    refusing server, a full disk. The CLI prints it as one line and exits with code 3, so scripts
    can tell "fix your command" (2) from "fix your setup" (3)."""


# Exit codes of ``ecellm`` (documented in docs/reliability.md).
EXIT_OK = 0
EXIT_VALIDATION = 1  # the command ran and found problems (``data validate``)
EXIT_USER = 2  # bad arguments or input files
EXIT_ENVIRONMENT = 3  # missing package, unreachable server, disk or permissions of the system
