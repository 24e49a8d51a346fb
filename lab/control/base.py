"""What the controller's action modules share (a leaf: ``actions`` and ``impair`` both import it).

The result and error of every action, the comment that tags the blackhole's firewall rules, and
finding a router's interface in a subnet (interfaces are found by subnet, never by ``ethN`` name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docker.models.containers import Container

from lab.control.docker_api import exec_checked
from lab.errors import LabError

BLACKHOLE_TAG = "lab-blackhole"


class ActionError(LabError, RuntimeError):
    """An action on the lab failed (one line, exit 2). A RuntimeError too, as the runner catches it."""


@dataclass(frozen=True)
class ActionResult:
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


_INTERFACES: dict[tuple[str, str], str] = {}


def interface_in(target: Container, subnet: str) -> str:
    """The router interface in `subnet` (cached: a router's interfaces never change while it runs)."""
    key = (target.id, subnet)
    if key in _INTERFACES:
        return _INTERFACES[key]
    script = ("import sys; from lab.endpoints.shared.netconf import interface_in; i = interface_in(sys.argv[1]); "
              "print(i.name if i else '')")
    name = exec_checked(target, ["python3", "-c", script, subnet]).strip()
    if not name:
        raise ActionError(f"{target.name}: no interface in {subnet}")
    _INTERFACES[key] = name
    return name
