"""The server farm on the real lab: one download from the client to the farm's address, then NAT
rebindings at the home router, behind each balancer mode.

- ``cid``: the rebound flow is a new conntrack flow at the balancer, routed by the server ID the
  u32 rule reads from the DCID: the same replica, which validates the new path; the download
  completes.
- ``hash``: the rebound flow is hashed afresh. The test rebinds until the balancer's conntrack
  shows a flow on the other replica (a rebinding that lands on the same replica is a migration it
  survives). Then the other replica's kernel counters show datagrams arriving and none leaving:
  aioquic drops packets for a CID it never issued (no stateless reset), and the download stalls.

Evidence: the balancer's conntrack table (lab.control.farm.flows), the replicas' own events
(their container logs) and their UDP counters (/proc/net/snmp, per network namespace).
"""

from __future__ import annotations

import json
import struct
import time

import pytest

from lab.control import farm as farm_control
from lab.endpoints.quic.quic_lb import LbConfig, server_id_of

CLIENT_LOG = "/tmp/farm-client.jsonl"
PIDFILE = "/tmp/farm-client.pid"


@pytest.fixture(scope="module")
def farm(lab):
    farm = farm_control.ensure_up(lab)
    yield farm
    farm_control.remove(lab)
    assert not farm_control.running(lab)


def udp_counters(replica) -> tuple[int, int]:
    """(InDatagrams, OutDatagrams) of the replica's network namespace."""
    lines = [line.split() for line in replica.exec_run(["cat", "/proc/net/snmp"]).output.decode().splitlines()
             if line.startswith("Udp:")]
    values = dict(zip(lines[0][1:], lines[1][1:], strict=True))
    return int(values["InDatagrams"]), int(values["OutDatagrams"])


def start_download(client, farm, size: str) -> None:
    command = (f"echo $$ > {PIDFILE}; exec python -m lab.endpoints.client --server {farm.address}:{farm.port} "
               f"--size {size} --rate 1MB/s >{CLIENT_LOG} 2>&1")
    client.exec_run(["sh", "-c", f"rm -f {CLIENT_LOG} {PIDFILE}"])
    client.exec_run(["sh", "-c", command], detach=True)


def client_events(client) -> list[dict]:
    text = client.exec_run(["cat", CLIENT_LOG]).output.decode(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def received(client) -> int:
    return max((e["bytes"] for e in client_events(client) if e["type"] == "progress"), default=0)


def client_running(client) -> bool:
    return client.exec_run(["sh", "-c", f"kill -0 $(cat {PIDFILE}) 2>/dev/null"])[0] == 0


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


CAPTURE, CAPTURE_PID = "/tmp/farm.pcap", "/tmp/farm-capture.pid"


def start_capture(replica, address: str) -> None:
    """dumpcap (tcpdump changes user, which cap_drop ALL forbids) on the replica's farm interface."""
    iface = replica.exec_run(["sh", "-c", f"ip -o -4 addr | awk '$4 ~ /^{address}\\// {{print $2}}'"]).output.decode()
    assert iface.strip(), f"{replica.name}: no interface holds {address}"
    replica.exec_run(["sh", "-c", f"rm -f {CAPTURE}; echo $$ > {CAPTURE_PID}; exec dumpcap -q -p -P -i {iface.strip()} "
                                  f"-f 'udp port 443' -w {CAPTURE}"], detach=True)
    wait_for(lambda: replica.exec_run(["test", "-s", CAPTURE])[0] == 0, 5, f"{replica.name}: dumpcap started")


def stop_capture(replica) -> bytes:
    replica.exec_run(["sh", "-c", f"kill -INT $(cat {CAPTURE_PID}); sleep 0.3; true"])
    return replica.exec_run(["cat", CAPTURE]).output


def udp_datagrams(pcap: bytes) -> list[tuple[str, int, str, int, bytes]]:
    """(src, sport, dst, dport, payload) of each IPv4/UDP frame of an Ethernet pcap."""
    magic = struct.unpack_from("<I", pcap)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    found, at = [], 24
    while at + 16 <= len(pcap):
        captured = struct.unpack_from(endian + "IIII", pcap, at)[2]
        frame, at = pcap[at + 16:at + 16 + captured], at + 16 + captured
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
        found.append((".".join(map(str, frame[26:30])), sport, ".".join(map(str, frame[30:34])), dport,
                      frame[14 + ihl + 8:]))
    return found


def rebind(router) -> None:
    code, output = router.exec_run(["sh", "-c", "conntrack -D -p udp >/dev/null 2>&1; true"])
    assert code == 0, output


def new_flow(lab, seen: set[str], client=None, router=None):
    """The next flow the balancer holds for a client tuple not in ``seen`` (the tables when none comes)."""
    try:
        return wait_for(lambda: next((f for f in farm_control.flows(lab) if f.client not in seen), None), 5.0,
                        f"a new flow at the balancer (known: {sorted(seen)})")
    except AssertionError as exc:
        tables = [f"{c.name}: {c.exec_run(['conntrack', '-L', '-p', 'udp']).output.decode()}" for c in (router,) if c]
        tail = [(e["type"], e.get("bytes"), e.get("silence_ms")) for e in client_events(client)][-6:] if client else []
        raise AssertionError(f"{exc}; {farm_control.flows(lab)}; {tables}; client: {tail}") from None


def replica_events(container, since: float) -> list[dict]:
    text = container.logs(since=int(since)).decode(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_cid_routing_keeps_a_rebound_connection_on_its_replica(lab, farm, ctr):
    from lab.control.docker_api import containers

    found = containers(lab)
    client, router = found["client"], found[lab.gateways["home"].router]
    farm_control.set_mode(lab, "cid")
    since = time.time() - 1
    start_download(client, farm, "3MB")
    first = new_flow(lab, set())
    holder = farm.replica_at(first.replica)
    assert holder is not None, first
    seen = {first.client}
    wait_for(lambda: any(e["type"] == "handshake_completed" for e in client_events(client)), 10, "the handshake")
    for _ in range(2):  # two rebindings: two new flows, both routed by the CID's server ID
        rebind(router)
        flow = new_flow(lab, seen, client, router)
        seen.add(flow.client)
        assert flow.replica == holder.address, (flow, holder)
        time.sleep(0.5)
    wait_for(lambda: not client_running(client), 20, "the download to end")
    events = client_events(client)
    done = [e for e in events if e["type"] == "transfer_complete"]
    assert done and done[-1]["ok"], events[-5:]
    assert not [e for e in events if e["type"] == "error"], events
    handshakes = [e for e in events if e["type"] == "handshake_completed"]
    assert len(handshakes) == 1  # one connection throughout: a migration, not a reconnect
    validated = [e for e in replica_events(found[holder.name], since) if e["type"] == "path_validated"]
    assert len(validated) >= 2, validated  # the replica validated each rebound path itself


def test_four_tuple_hashing_sends_a_rebound_connection_to_a_replica_that_drops_it(lab, farm, ctr):
    from lab.control.docker_api import containers

    found = containers(lab)
    client, router = found["client"], found[lab.gateways["home"].router]
    farm_control.set_mode(lab, "hash")
    start_download(client, farm, "40MB")  # 40 s at 1 MB/s: it cannot finish within the test
    first = new_flow(lab, set())
    holder = farm.replica_at(first.replica)
    assert holder is not None, first
    other = next(r for r in farm.replicas if r != holder)
    seen = {first.client}
    wait_for(lambda: any(e["type"] == "handshake_completed" for e in client_events(client)), 10, "the handshake")
    start_capture(found[other.name], other.address)
    try:
        tries: list[farm_control.Flow] = []
        for _ in range(16):  # P(16 tries all hash to the same replica) = 2**-16
            before = udp_counters(found[other.name])
            rebind(router)
            flow = new_flow(lab, seen, client, router)
            seen.add(flow.client)
            tries.append(flow)
            if flow.replica == other.address:
                break
            time.sleep(0.3)  # the same replica: it migrates the connection; rebind again
        else:
            pytest.fail(f"16 rebindings all hashed to {holder.name}: {sorted(seen)}")
        time.sleep(1.0)
        stalled_at = received(client)
        time.sleep(2.0)
        inside, outside = udp_counters(found[other.name])
        assert inside - before[0] >= 3, (before, inside)  # the client's packets reach the other replica ...
        assert outside == before[1], (before, outside)  # ... which answers nothing: silence, no stateless reset
        assert client_running(client)  # the download has not completed: the connection is stuck
        events = client_events(client)
        assert not [e for e in events if e["type"] == "transfer_complete"], events[-3:]
        assert received(client) == stalled_at > 0  # not one byte more in 2 s (1 MB/s before)
        # The other replica's capture: the moved flow's datagrams arrive, their short-header DCIDs
        # carry the first replica's server ID (its connection's CIDs), and the replica sends nothing.
        datagrams = udp_datagrams(stop_capture(found[other.name]))
        host, port = flow.client.rsplit(":", 1)
        arrived = [d for d in datagrams if (d[0], d[1]) == (host, int(port))]
        short = [d[4] for d in arrived if d[4] and d[4][0] & 0xC0 == 0x40]
        assert len(short) >= 3 and {server_id_of(LbConfig(), p[1:9]) for p in short} == {holder.server_id}, arrived
        assert not [d for d in datagrams if d[0] == other.address], "the other replica answered"
        print(f"moved to {other.name} after {len(tries)} rebinding(s); stalled at {stalled_at} bytes; "
              f"{len(arrived)} datagrams reached it, {len(short)} short headers to server ID {holder.server_id}")
    finally:
        client.exec_run(["sh", "-c", f"kill $(cat {PIDFILE}) 2>/dev/null; true"])
        found[other.name].exec_run(["sh", "-c", f"kill -INT $(cat {CAPTURE_PID}) 2>/dev/null; true"])
