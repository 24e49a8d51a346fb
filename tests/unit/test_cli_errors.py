"""One base error, caught once in ``lab.cli.main``: one line on stderr (``error: ...``), exit 2.

A scenario file's errors locate themselves (``file:line: field: message``), one line each, all
printed. No Docker here: the verbs' Docker edges are replaced by functions that raise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli import main
from lab.control.base import ActionError
from lab.control.docker_api import CommandFailed, DockerUnavailable
from lab.control.preflight import PreflightError
from lab.errors import LabError
from lab.scenario.schema import ScenarioError, ScenarioInvalid, TopologyNames
from lab.topology.load import BadOverride, ComposeMissing
from lab.topology.model import TopologyError
from lab.verify.judge import NotARunDir

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad_scenarios"
TOPOLOGY = TopologyNames(
    networks=frozenset({"home", "cellular", "office", "cellular6", "internet", "datacenter"}),
    client_networks=frozenset({"home", "cellular", "office", "cellular6"}),
    routers=frozenset({"home-router", "carrier-nat", "office-router", "carrier-nat64"}),
    default_network="home",
)


@pytest.mark.parametrize("error", [ActionError, CommandFailed, DockerUnavailable, PreflightError, ScenarioError,
                                   ScenarioInvalid, ComposeMissing, BadOverride, TopologyError, NotARunDir])
def test_every_user_facing_error_is_a_lab_error(error: type) -> None:
    assert issubclass(error, LabError)


def test_runtime_and_value_errors_stay_what_their_callers_catch() -> None:
    assert issubclass(ActionError, RuntimeError) and issubclass(CommandFailed, RuntimeError)  # the runner's except
    assert issubclass(ScenarioError, ValueError) and issubclass(TopologyError, ValueError)  # the judge's except


def test_a_docker_error_in_a_verb_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    def unreachable():
        raise DockerUnavailable("cannot reach the Docker daemon (DockerException): is it running?")

    monkeypatch.setattr("lab.cli.status.collect", unreachable)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err == "error: cannot reach the Docker daemon (DockerException): is it running?\n"


def test_a_missing_compose_is_one_line_in_any_verb(monkeypatch, capsys) -> None:
    def missing():
        raise ComposeMissing("`docker compose` (v2) is missing: run `make compose`")

    monkeypatch.setattr("lab.cli.impair.load_topology", missing)
    assert main(["impair", "show"]) == 2
    assert capsys.readouterr().err == "error: `docker compose` (v2) is missing: run `make compose`\n"


def test_a_bad_scenario_prints_every_located_problem(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr("lab.cli.scenario._names", lambda: TOPOLOGY)
    bad = tmp_path / "two-errors.yaml"
    bad.write_text("name: two-errors\ndescription: x\nworkload:\n  sise: 8MB\nexpect: [nope]\n")
    assert main(["scenario", "run", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{bad}:4: workload.sise: unknown key 'sise'; allowed: transport, kind, size, rate, interval, duration, "
        "migration, rotate_cid, port, probe_after, bitrate, segment, segments, startup, buffer, datagrams, family "
        "(did you mean 'size'?)",
        f"{bad}:5: expect[0]: unknown check 'nope'; known: connection_survived, single_handshake, "
        "transfer_complete, paths_validated, server_saw_addresses, server_saw_ips, cid_changed, cid_unchanged, "
        "max_disruption_ms, validation_ms, amplification_respected, migrated_to_preferred, tcp_reconnected, "
        "reconnects, rebuffer_events, max_rebuffer_ms, startup_ms, freeze_ms",
    ]


def test_validate_reports_each_file(monkeypatch, capsys) -> None:
    monkeypatch.setattr("lab.cli.scenario._names", lambda: TOPOLOGY)
    good = ROOT / "scenarios" / "nat-rebinding.yaml"
    assert main(["scenario", "validate", str(good), str(BAD / "bad-action.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == f"{good}: ok\n"
    assert err.startswith(f"{BAD / 'bad-action.yaml'}:10: steps[1].action: 'conect' is not allowed")


def test_an_unknown_scenario_names_the_known_ones(capsys) -> None:
    assert main(["scenario", "run", "wifi-to-satellite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no scenario named 'wifi-to-satellite'; known: ") and "wifi-to-cellular" in err
