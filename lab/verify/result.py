"""The verdict of one check, shared by every judge in the lab (events, qlog, captures, cross-checks).

A leaf module: it imports nothing of the lab, so every checker can depend on it without a circle.

A check has three outcomes, never two: ``passed``, ``failed`` and ``not verified``. The last one is
a check that had nothing to judge (no packets, no events of the kind it looks at): it is never
counted as a pass. A fourth, ``not applicable``, is a white-box check in a black-box run (it needs
the lab's own events from an end the lab did not instrument): it is neither a pass nor a failure.
A scenario may record a check as a known failure of the stack under test, with its reason
(``known_failures:``): failing it is then an ``expected failure``, shown, not counted against the
run; passing it is an ``unexpected pass``, which fails the run until the record is updated (as a
strict xfail does), so that a recorded finding can never go stale unseen.
``evidence`` says how many observations the verdict rests on, so a reader can
tell "0 reconnects in a run of 4,000 packets" from "0 reconnects in an empty file".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PASSED, FAILED, NOT_VERIFIED, NOT_APPLICABLE = "passed", "failed", "not verified", "not applicable"
EXPECTED_FAILURE, UNEXPECTED_PASS = "expected failure", "unexpected pass"
# How a terminal line marks each status (lab verify, walkthrough): four characters each.
SHORT_MARKS = {PASSED: "ok  ", FAILED: "FAIL", NOT_VERIFIED: "n/v ", NOT_APPLICABLE: "n/a ", EXPECTED_FAILURE: "xf  ",
               UNEXPECTED_PASS: "XPAS"}

@dataclass(frozen=True)
class CheckResult:
    """One verdict. ``observed`` and ``expected`` are short strings or numbers.

    ``verified=False`` marks a check with nothing to judge; ``passed`` is then forced to False,
    so code that only looks at ``passed`` can never count it as a pass.
    """

    name: str
    passed: bool
    observed: str | int | float
    expected: str | int | float
    transport: str | None = None
    evidence: int | None = None  # observations the verdict rests on (None: not counted)
    source: str = "events"  # events | qlog | captures
    verified: bool = True
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)
    applicable: bool = True
    known_failure: str = ""  # why the stack under test is recorded as failing this check

    def __post_init__(self) -> None:
        if (not self.verified or not self.applicable) and self.passed:
            object.__setattr__(self, "passed", False)

    @property
    def status(self) -> str:
        if not self.applicable:
            return NOT_APPLICABLE
        if not self.verified:
            return NOT_VERIFIED
        if self.known_failure:
            return UNEXPECTED_PASS if self.passed else EXPECTED_FAILURE
        return PASSED if self.passed else FAILED

    def with_(self, **changes: Any) -> CheckResult:
        """A copy with some fields changed (``dataclasses.replace`` re-running ``__post_init__``)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return CheckResult(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "passed": self.passed, "observed": self.observed,
                "expected": self.expected, "transport": self.transport, "evidence": self.evidence,
                "source": self.source, **({"known_failure": self.known_failure} if self.known_failure else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        status = data.get("status", PASSED if data.get("passed") else FAILED)
        return cls(str(data["name"]), status in (PASSED, UNEXPECTED_PASS), data.get("observed", ""),
                   data.get("expected", ""), data.get("transport"), data.get("evidence"), data.get("source", "events"),
                   verified=status != NOT_VERIFIED, applicable=status != NOT_APPLICABLE,
                   known_failure=str(data.get("known_failure", "")))


def not_verified(name: str, why: str, expected: str | int | float, source: str = "events",
                 transport: str | None = None) -> CheckResult:
    """A check that had nothing to judge: ``why`` says what was missing."""
    return CheckResult(name, False, why, expected, transport, 0, source, verified=False)


def not_applicable(name: str, why: str, expected: str | int | float, source: str = "events",
                   transport: str | None = None) -> CheckResult:
    """A white-box check in a black-box run: ``why`` names the evidence it would need."""
    return CheckResult(name, False, why, expected, transport, 0, source, applicable=False)


@dataclass(frozen=True)
class Figure:
    """A report-only observation: shown apart from the checks, never counted as a pass."""

    name: str
    value: str
    source: str = "captures"
    transport: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "source": self.source, "transport": self.transport}
