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
