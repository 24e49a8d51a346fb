"""Judging an end the lab did not instrument: what any QUIC stack leaves behind (pure).

A black-box run (:mod:`lab.scenario.stacks`) has no lab events from its foreign end(s), so its
verdict rests on four kinds of evidence, and every check names the one it used:
- ``captures``: the server-side capture, decrypted with the key log the endpoint wrote;
- ``qlog``: the endpoint's qlog, when it writes one to QLOGDIR (optional: the contract does not
  oblige it);
- ``files``: each downloaded file's sha256 against the file served;
- ``exit code``: the client's exit code (127: the stack does not support the test case).

A scenario expectation is judged from the capture where the capture can show it
(:data:`FROM_CAPTURE`); the others need the lab's own events and are ``not applicable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lab.scenario.expectations import Comparison
from lab.scenario.schema import Expectation
from lab.scenario.stacks import UNSUPPORTED_EXIT
from lab.verify import capture_checks
from lab.verify.capture_checks import _new_paths, _paths_in_order, _Roles
from lab.verify.pcap import QuicPacket
from lab.verify.result import CheckResult, not_applicable, not_verified

EXIT, FILES, CAPTURES = "exit code", "files", "captures"
PROBING = frozenset({0x00, 0x18, 0x1a, 0x1b})  # RFC 9000 §9.1
STREAM_TYPES = frozenset(range(0x08, 0x10))


@dataclass(frozen=True)
class CaptureFacts:
    """What the server-side capture shows of the connection, as the black-box checks read it."""

    handshakes: int
    client_tuples: tuple[str, ...]  # every client ip:port the server heard from, in order
    client_ips: tuple[str, ...]
    migrated_paths: int  # paths after the first that are not another connection's handshake
    validated_paths: int  # of those: a server PATH_CHALLENGE on it answered by the client
    validation_ms: float | None  # the slowest of those validations (challenge sent -> response seen)
    client_dcids: tuple[str, ...]  # the 1-RTT DCIDs the client used, in order
    longest_client_silence_ms: float | None  # at the server: the longest gap between client datagrams
    packets: int
    server_tuples: tuple[str, ...] = ()  # server ip:port the client sent non-probing packets to, in order

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def capture_facts(packets: list[QuicPacket], server_addresses: Iterable[str]) -> CaptureFacts:
    roles = _Roles(server_addresses)
    order = _paths_in_order(packets, roles)
    migrated = _new_paths(packets, roles)
    handshakes = len(capture_checks.handshakes(packets, server_addresses).details["scids"])
    challenges: dict[str, tuple[float, tuple]] = {}  # data -> (time, path) of the server's challenges
    answered: dict[tuple, float] = {}
    for p in packets:
        path = roles.path(p)
        if path is None:
            continue
        if roles.from_server(p):
            for data in p.path_challenge:
                challenges.setdefault(data, (p.time, path))
        else:
            for data in p.path_response:
                if data in challenges:
                    sent, on = challenges[data]
                    answered.setdefault(on, (p.time - sent) * 1000)
    validated = [answered[path] for path in migrated if path in answered]
    dcids: list[str] = []
    times: list[float] = []
    seen_frames: set[int] = set()
    for p in packets:
        if not roles.to_server(p):
            continue
        if p.frame not in seen_frames:
            seen_frames.add(p.frame)
            times.append(p.time)
        if p.packet_type == "1rtt" and p.dcid and p.dcid not in dcids:
            dcids.append(p.dcid)
    silence = max((b - a for a, b in zip(times, times[1:], strict=False)), default=None)
    servers_used = tuple(dict.fromkeys(_endpoint(p.dst_ip, p.dst_port) for p in packets
                                       if roles.to_server(p) and p.decrypted and set(p.frame_types) - PROBING))
    tuples = tuple(_endpoint(path[0], path[1]) for path in order)
    ips = tuple(dict.fromkeys(path[0] for path in order))
    return CaptureFacts(handshakes, tuples, ips, len(migrated), len(validated),
                        round(max(validated), 1) if validated else None, tuple(dcids),
                        None if silence is None else round(silence * 1000, 1), len(packets), servers_used)


# --- the scenario's expectations, judged from the capture ---------------------------------------

Judge = Callable[[CaptureFacts, Any, list[QuicPacket], set[str]], tuple[bool, str, str]]


def _compare(value: float | None, argument: Comparison, what: str) -> tuple[bool, str, str]:
    if value is None:
        return False, f"no {what} in the capture", str(argument)
    return argument.holds(value), f"{value:g}", str(argument)


def _survived(f: CaptureFacts, _: Any, __: list[QuicPacket], ___: set[str]) -> tuple[bool, str, str]:
    # The client's exit code says whether the transfer ended well (its own check); here: one connection.
    return f.handshakes == 1, f"{f.handshakes} handshake(s) in the capture", "one connection from start to end"


def _single_handshake(f: CaptureFacts, *_: Any) -> tuple[bool, str, str]:
    return f.handshakes == 1, f"{f.handshakes} handshake(s) (server Initial SCIDs)", "exactly 1"


def _paths_validated(f: CaptureFacts, argument: Comparison, *_: Any) -> tuple[bool, str, str]:
    ok, _, expected = _compare(float(f.validated_paths), argument, "validation")
    return ok, f"{f.validated_paths} of {f.migrated_paths} new path(s) validated (challenge answered)", expected


def _saw_addresses(f: CaptureFacts, argument: Comparison, *_: Any) -> tuple[bool, str, str]:
    return argument.holds(len(f.client_tuples)), f"{len(f.client_tuples)}: {list(f.client_tuples)}", str(argument)


def _saw_ips(f: CaptureFacts, argument: Comparison, *_: Any) -> tuple[bool, str, str]:
    return argument.holds(len(f.client_ips)), f"{len(f.client_ips)}: {list(f.client_ips)}", str(argument)


def _cid_unchanged(f: CaptureFacts, *_: Any) -> tuple[bool, str, str]:
    return len(f.client_dcids) == 1, f"client 1-RTT DCIDs {list(f.client_dcids)}", "one DCID throughout"


def _cid_changed(f: CaptureFacts, argument: Comparison | None, *_: Any) -> tuple[bool, str, str]:
    changes = max(len(f.client_dcids) - 1, 0)
    wanted = argument or Comparison(">=", 1)
    return wanted.holds(changes), f"{changes} change(s): {list(f.client_dcids)}", str(wanted)


def _disruption(f: CaptureFacts, argument: Comparison, *_: Any) -> tuple[bool, str, str]:
    ok, observed, expected = _compare(f.longest_client_silence_ms, argument, "client datagrams")
    return ok, f"{observed} ms (the longest silence of the client at the server's side)", expected


def _validation(f: CaptureFacts, argument: Comparison, *_: Any) -> tuple[bool, str, str]:
    ok, observed, expected = _compare(f.validation_ms, argument, "answered PATH_CHALLENGE on a new path")
    return ok, f"{observed} ms (challenge to response at the server)", expected


def _preferred(f: CaptureFacts, argument: str | None, *_: Any) -> tuple[bool, str, str]:
    # Non-probing packets to another server address than the first: the client moved there (§9.6).
    expected = f"non-probing client packets to {argument or 'a server address other than the first'}"
    moved = [t for t in f.server_tuples[1:] if argument is None or t == argument or t.rsplit(':', 1)[0] == argument]
    return bool(moved), f"client sent non-probing packets to {list(f.server_tuples)}", expected


def _amplification(f: CaptureFacts, _: Any, packets: list[QuicPacket], servers: set[str]) -> tuple[bool, str, str]:
    result = capture_checks.amplification(packets, servers)
    return result.passed, str(result.observed), str(result.expected)


# Expectations the server-side capture can show; the rest (reconnects, preferred address as the
# client saw it, TCP) need the lab's events and are not applicable in a black-box run.
FROM_CAPTURE: dict[str, Judge] = {
    "connection_survived": _survived,
    "single_handshake": _single_handshake,
    "paths_validated": _paths_validated,
    "server_saw_addresses": _saw_addresses,
    "server_saw_ips": _saw_ips,
    "cid_unchanged": _cid_unchanged,
    "cid_changed": _cid_changed,
    "max_disruption_ms": _disruption,
    "validation_ms": _validation,
    "amplification_respected": _amplification,
    "migrated_to_preferred": _preferred,
}


def expectation_checks(expect: Iterable[Expectation], packets: list[QuicPacket] | None,
                       servers: set[str], why_no_capture: str = "") -> list[CheckResult]:
    facts = capture_facts(packets, servers) if packets else None
    checks = []
    for item in expect:
        if item.check == "transfer_complete":
            continue  # judged by the files' sha256 (transfer_sha256)
        judge = FROM_CAPTURE.get(item.check)
        label = f"{item.check}{'' if item.argument is None else f': {item.argument}'}"
        if judge is None:
            checks.append(not_applicable(item.check, "needs the lab's own events from an end the lab did not "
                                         "instrument", label, transport="quic"))
        elif facts is None:
            checks.append(not_verified(item.check, why_no_capture or "no decoded capture", label, CAPTURES, "quic"))
        else:
            ok, observed, expected = judge(facts, item.argument, packets or [], servers)
            checks.append(CheckResult(item.check, ok, observed, expected, "quic", facts.packets, CAPTURES))
    return checks


# --- the ends themselves ----------------------------------------------------------------------------


def exit_check(stack: str, code: int | None) -> CheckResult:
    expected = "0 (the interop contract: 0 success, 1 failure, 127 unsupported)"
    if code is None:
        return not_verified("client_exit", f"{stack}: no exit code (still running or removed)", expected, EXIT)
    observed = f"{stack} exited {code}" + (" (test case unsupported)" if code == UNSUPPORTED_EXIT else "")
    return CheckResult("client_exit", code == 0, observed, expected, "quic", 1, EXIT)


def server_check(stack: str, running_at_end: int | None) -> CheckResult:
    expected = f"the {stack} server still running when the client finished"
    if running_at_end is None:
        return not_verified("server_alive", "not recorded", expected, EXIT)
    return CheckResult("server_alive", bool(running_at_end), "running" if running_at_end else "had exited",
                       expected, "quic", 1, EXIT)


def files_check(served: Iterable[Mapping[str, Any]], downloaded: Mapping[str, str | None]) -> CheckResult:
    """Every served file arrived whole: the download's sha256 equals the served file's."""
    served = list(served)
    expected = "every file downloaded, sha256 equal to the file served"
    if not served:
        return not_verified("transfer_sha256", "the run recorded no served file", expected, FILES)
    bad = []
    for item in served:
        got = downloaded.get(str(item["name"]))
        if got is None:
            bad.append(f"{item['name']}: not downloaded")
        elif got != item["sha256"]:
            bad.append(f"{item['name']}: sha256 {got[:12]}… != served {str(item['sha256'])[:12]}…")
    observed = "; ".join(bad) if bad else f"{len(served)} file(s), sha256 equal ({served[0]['sha256'][:16]}…)"
    return CheckResult("transfer_sha256", not bad, observed, expected, "quic", len(served), FILES)
