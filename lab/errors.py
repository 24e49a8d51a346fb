"""The lab's one base error (a leaf module): caught once in ``lab.cli.main``, printed as one line, exit 2."""

from __future__ import annotations

from typing import ClassVar


class LabError(Exception):
    """A user-facing failure: printed as one line, exit code 2, no traceback.

    ``prefix`` goes before the message; a scenario's list of ``file:line: field: message``
    problems sets it empty, since each line already says where it comes from.
    """

    prefix: ClassVar[str] = "error: "
