"""The lab's readiness (compose.yaml's ready labels, no healthcheck) and the endpoints' slice request."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from lab.control.readiness import READY_LABEL, not_ready
from lab.endpoints.shared import sched
from lab.topology.load import ROOT

MEASURED = ("server", "client", "home-router", "carrier-nat", "office-router", "carrier-nat64")


def test_not_ready_names_the_services_whose_command_fails_and_skips_those_without_one() -> None:
    asked: list[tuple[str, str]] = []

    def probe(service: str, command: str) -> bool:
        asked.append((service, command))
        return service != "server"

    commands = {"server": "ss -Hlun", "client": "test -f /run/lab/ready", "balancer": None}
    assert not_ready(commands, probe) == ["server"]
    assert sorted(asked) == [("client", "test -f /run/lab/ready"), ("server", "ss -Hlun")]
    assert not_ready({}, probe) == []


def test_the_measured_services_have_a_ready_label_and_no_healthcheck() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in MEASURED:
        assert "healthcheck" not in services[name], name  # a probe every few seconds stalls the endpoints
        assert services[name]["labels"][READY_LABEL], name
        for dependency in (services[name].get("depends_on") or {}).values():
            assert dependency["condition"] == "service_started", name  # nothing waits on a health state
    assert "sport = :443" in services["server"]["labels"][READY_LABEL]  # the server is ready when it listens


@pytest.mark.parametrize(("text", "expected"), [("", sched.DEFAULT_SLICE_US), ("250", 250), ("0", None)])
def test_slice_from_env(text: str, expected: int | None) -> None:
    assert sched.slice_from_env({sched.SLICE_ENV: text} if text else {}) == expected


def test_slice_from_env_rejects_a_negative_or_non_number() -> None:
    with pytest.raises(ValueError, match="LAB_SCHED_SLICE_US=-5"):
        sched.slice_from_env({sched.SLICE_ENV: "-5"})
    with pytest.raises(ValueError):
        sched.slice_from_env({sched.SLICE_ENV: "fast"})


def test_request_slice_sets_this_threads_slice_on_this_kernel() -> None:
    # In a child process, so the test runner keeps its own slice.
    code = ("from lab.endpoints.shared import sched; print(sched.request_slice(300)); "
            "print([l for l in open('/proc/self/sched') if l.startswith('se.slice')][0].split()[-1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    reported, in_proc = out.stdout.split()
    if reported == "None":  # a kernel without EEVDF custom slices (before 6.12) ignores the request
        pytest.skip(f"this kernel keeps its default slice ({in_proc} ns)")
    assert int(reported) == 300_000 and int(in_proc) == 300_000
    assert sched.request_slice(None) is None
