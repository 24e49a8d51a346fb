"""lab.api's pure part: naming a scenario (no Docker)."""

from __future__ import annotations

import pytest

from lab import api
from lab.errors import LabError
from lab.scenario.schema import TopologyNames

NAMES = TopologyNames(
    networks=frozenset({"home", "cellular", "office", "internet", "datacenter"}),
    client_networks=frozenset({"home", "cellular", "office"}),
    routers=frozenset({"home-router", "carrier-nat", "office-router"}),
    default_network="home",
)


def test_a_catalogue_name_or_a_file_loads_the_same_scenario() -> None:
    by_name = api.scenario("nat-rebinding", NAMES)
    by_file = api.scenario(api.SCENARIOS / "nat-rebinding.yaml", lambda: NAMES)
    assert by_name.name == by_file.name == "nat-rebinding"
    assert by_name.steps == by_file.steps


def test_an_unknown_name_or_file_is_one_line_naming_what_exists(tmp_path) -> None:
    with pytest.raises(LabError, match=r"^no scenario named 'wifi-to-satellite'; known: .*nat-rebinding"):
        api.scenario_path("wifi-to-satellite")
    with pytest.raises(LabError, match=r"nope\.yaml: no such file$"):
        api.scenario_path(tmp_path / "nope.yaml")
