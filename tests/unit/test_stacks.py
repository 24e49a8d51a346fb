"""Choosing the stack of each end (pure), and the interop contract a foreign end is given."""

from __future__ import annotations

import pytest

from lab.scenario import stacks
from lab.scenario.stacks import Endpoints, ServedFile, StackError, endpoints, interop_plan, resolve


def test_names_and_images():
    assert resolve(None, "client").white_box and resolve("lab", "server").white_box
    assert resolve("qh3", "client").image == stacks.QH3_IMAGE
    assert resolve("aioquic", "server").command[:3] == ("python", "-m", "lab.endpoints.interop")
    assert resolve("ghcr.io/org/quic:1.2", "server").image == "ghcr.io/org/quic:1.2"


@pytest.mark.parametrize("bad", ["nope", "Upper:1", "a b:1", "x:" + "y" * 200])
def test_bad_stacks_are_rejected_in_one_line(bad):
    with pytest.raises(StackError) as err:
        resolve(bad, "client")
    assert "\n" not in str(err.value) and "client" in str(err.value)


def test_one_foreign_end_makes_the_client_speak_the_contract():
    assert not endpoints().black_box
    ends = endpoints(server="qh3")
    assert ends.black_box and ends.client.name == "aioquic" and ends.server.name == "qh3"
    ends = endpoints(client="qh3")
    assert ends.client.name == "qh3" and ends.server.white_box  # the lab's server serves hq-interop
    assert Endpoints.from_dict(ends.to_dict()) == ends


def test_interop_plan():
    files = (ServedFile("transfer-8.bin", 8, "00" * 32),)
    client = interop_plan("client", "https://10.0.0.1:443", files, 200)
    assert client.environment["REQUESTS"] == "https://10.0.0.1:443/transfer-8.bin"
    assert client.environment["ROLE"] == "client" and client.environment["PROBE_AFTER_MS"] == "200"
    assert client.mounts["client/downloads"] == ("/downloads", "rw")
    server = interop_plan("server", "https://10.0.0.1:443", files, 200)
    assert server.mounts["www"] == ("/www", "ro") and server.mounts[stacks.CERTS] == ("/certs", "ro")


@pytest.mark.parametrize(("argv", "field"), [
    (["scenario", "run", "nat-rebinding", "--client-image", "No Such"], "client 'No Such'"),
    (["scenario", "run", "nat-rebinding", "--server-image", "quic"], "server 'quic'"),
    (["matrix", "--clients", "aioquic,Bad:Tag:x"], "client 'Bad:Tag:x'"),
    (["matrix", "--servers", ","], "--servers"),
    (["matrix", "--assemble", "/nonexistent-dir", "--out", "/tmp/x"], "not a matrix directory"),
    (["matrix", "--assemble", "/nonexistent-dir"], "--assemble needs --out"),
])
def test_bad_stack_options_are_one_line_and_exit_2(argv, field, capsys):
    from lab.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err, err


def test_a_scenario_names_its_stacks_and_a_bad_one_is_located():
    from lab.scenario.schema import ScenarioError, TopologyNames, parse_scenario

    names = TopologyNames(networks=frozenset({"home", "internet"}), client_networks=frozenset({"home"}),
                          routers=frozenset({"home-router"}), default_network="home")
    text = ("name: s\ndescription: A sample.\nworkload:\n  size: 1MB\nexpect:\n  - transfer_complete\n"
            "stacks:\n  client: {}\n")
    assert parse_scenario(text.format("qh3"), "s.yaml", names).stacks == {"client": "qh3"}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text.format("'Not An Image'"), "s.yaml", names)
    assert "s.yaml:8: stacks.client" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text.format("qh3").replace("client:", "clinet:"), "s.yaml", names)
    assert "stacks.clinet" in str(err.value)
