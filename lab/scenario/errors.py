"""A scenario file's problems, each located by file, line and field (a ``LabError``: exit 2)."""

from __future__ import annotations

from collections.abc import Sequence

from lab.errors import LabError


class ScenarioError(LabError, ValueError):
    """One problem in a scenario file, located by file, line (1-based) and field path.

    Its text locates itself (``file:line: field: message``), so ``lab.cli.main`` prints it as it is,
    without the ``error:`` of other errors (``prefix``).
    """

    prefix = ""

    def __init__(self, file: str, line: int, field: str, message: str) -> None:
        super().__init__(file, line, field, message)
        self.file = file
        self.line = line
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class ScenarioInvalid(ScenarioError):
    """All problems of one file. Located at the first; ``str`` gives one line per problem."""

    def __init__(self, errors: Sequence[ScenarioError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.line, first.field, first.message)
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(ScenarioError.__str__(e) for e in self.errors)
