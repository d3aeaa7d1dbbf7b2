"""Domain exceptions. Each maps to an exit status of the command line (contract: exit codes)."""

from __future__ import annotations


class LabelqaError(Exception):
    """Base of the errors that stop a run with a clear message instead of a stack trace."""

    exit_code = 1


class ConfigError(LabelqaError):
    """A configuration key is unknown or its value is invalid (exit 2)."""

    exit_code = 2


class InputError(LabelqaError):
    """An input table cannot be audited: the message names the table, column, rule and an
    example offending id (exit 2)."""

    exit_code = 2

    def __init__(self, table: str, column: str | None, rule: str, example: object = None):
        self.table, self.column, self.rule, self.example = table, column, rule, example
        where = f"{table}.{column}" if column else table
        message = f"{where}: {rule}"
        if example is not None:
            message += f" (example id: {example!r})"
        super().__init__(message)


class SchemaErrors(InputError):
    """Both tables' schema problems at once: the user fixes them in one go (exit 2)."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.table, first.column, first.rule, first.example)
        self.args = (f"{len(errors)} schema problems: "
                     + "; and ".join(str(error) for error in errors),)

    def __str__(self) -> str:
        return self.args[0]


class GateFailed(LabelqaError):
    """A configured quality gate failed; the outputs and the manifest are written (exit 3)."""

    exit_code = 3

    def __init__(self, failures: list[str], report: object = None):
        self.failures, self.report = failures, report
        super().__init__("quality gate failed: " + "; ".join(failures))
