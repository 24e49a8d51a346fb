"""lab/addresses.py: one reading of an address for the endpoints, the scenario files and the judge."""

from __future__ import annotations

import pytest

from lab.addresses import host_number_or_ipv4, host_of, ip_or_ip_port, same_ip


def test_host_of_text_and_socket_tuples() -> None:
    assert host_of("10.0.0.5:443") == host_of("10.0.0.5") == host_of(("::ffff:10.0.0.5", 443, 0, 0)) == "10.0.0.5"
    assert host_of("[fd00::1]:443") == host_of("fd00::1") == host_of(("fd00::1", 443, 0, 0)) == "fd00::1"
    assert same_ip(("::ffff:10.0.0.1", 1, 0, 0), "10.0.0.1:2") and not same_ip("10.0.0.1:1", "10.0.0.2:1")


def test_scenario_addresses() -> None:
    assert host_number_or_ipv4(7) == 7 and host_number_or_ipv4("10.3.0.99") == "10.3.0.99"
    for bad, says in ((300, "host number must be from 2 to 254"), ("fd00::1", "not an address"), (True, "not an")):
        with pytest.raises(ValueError, match=says):
            host_number_or_ipv4(bad)
    for good in ("10.9.0.2", "10.9.0.2:4443", "[fd00::2]:4443", "fd00::2"):
        assert ip_or_ip_port(good) == good
    for bad in ("10.9.0.999", "server:443", "10.9.0.2:99999", 4443):
        with pytest.raises(ValueError, match="needs an address such as"):
            ip_or_ip_port(bad)
