"""The lab's one base error (a leaf module): caught once in ``lab.cli.main``, printed as one line, exit 2."""

from __future__ import annotations


class LabError(Exception):
    """A user-facing failure: printed as one line, exit code 2, no traceback."""
