"""Capture checks: pure rules on hand-built packet lists, and the committed loopback captures through the lab
image's tshark (those need Docker and the image: marked integration, run by `make test`)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from lab.verify import capture_checks as cc
from lab.verify.pcap import QuicPacket, parse_tshark_json, read_quic_packets, tshark_args

S_IP, S_PORT = "10.0.0.1", 443
SERVER = {f"{S_IP}:{S_PORT}"}
A = ("10.0.1.2", 50000)  # client's first address
B = ("10.0.1.2", 50001)  # port rebinding
C = ("10.0.2.9", 40000)  # new address

ACK, STREAM, PING, PADDING, NCID, RCID, CHAL, RESP = 0x02, 0x08, 0x01, 0x00, 0x18, 0x19, 0x1A, 0x1B


class Trace:
    """Builds QuicPacket lists: one datagram per call unless ``coalesce`` is used."""

    def __init__(self) -> None:
        self.packets: list[QuicPacket] = []
        self.frame = 0

    def _add(self, src, dst, ptype, dcid, frames, size, scid="", challenge=(), response=(), same_datagram=False,
             decrypted=True):
        if not same_datagram:
            self.frame += 1
        index = sum(1 for p in self.packets if p.frame == self.frame)
        p = QuicPacket(frame=self.frame, index_in_datagram=index, time=float(self.frame), src_ip=src[0],
                       src_port=src[1], dst_ip=dst[0], dst_port=dst[1], long_header=ptype != "1rtt",
                       packet_type=ptype, version=None if ptype == "1rtt" else 1, dcid=dcid, scid=scid,
                       packet_number=self.frame, decrypted=decrypted, frame_types=tuple(frames) if decrypted else (),
                       path_challenge=tuple(challenge), path_response=tuple(response), udp_payload_length=size,
                       packet_length=size)
        self.packets.append(p)
        return self

    def c(self, addr, dcid, frames, size=50, **kw):
        return self._add(addr, (S_IP, S_PORT), kw.pop("ptype", "1rtt"), dcid, frames, size, **kw)

    def s(self, addr, dcid, frames, size=50, **kw):
        return self._add((S_IP, S_PORT), addr, kw.pop("ptype", "1rtt"), dcid, frames, size, **kw)

    def handshake(self, addr=A, server_scid="s0", client_scid="c0"):
        self.c(addr, "odcid", [0x06], 1200, ptype="initial", scid=client_scid)
        self.s(addr, client_scid, [ACK, 0x06], 1200, ptype="initial", scid=server_scid)
        self.s(addr, client_scid, [0x06], 1200, ptype="handshake", scid=server_scid, same_datagram=True)
        self.c(addr, server_scid, [ACK], 1200, ptype="handshake", scid=client_scid)
        return self


def migrated(new=C, client_dcid="s1", server_dcid="c1", first_server=((CHAL, PADDING), ("aa",)), respond=True):
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).s(A, "c0", [STREAM], 1200)
    t.c(new, client_dcid, [PING], 40)
    frames, chal = first_server
    t.s(new, server_dcid, frames, 100, challenge=chal)
    if respond:
        t.c(new, client_dcid, [RESP, PADDING], 1200, response=chal or ("aa",))
    t.s(new, server_dcid, [STREAM], 1200)
    return t.packets


# --- pure rules -----------------------------------------------------------------------------------------------

def test_good_migration_passes_everything():
    checks = cc.run_all(migrated(), SERVER, active_migration=True, expect_linkable="unlinkable")
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert {c.name for c in checks} >= {"handshakes", "versions", "paths", "path_challenge_on_new_path[pr426]",
                                        "challenges_answered", "amplification", "cid_linkability", "undecrypted",
                                        "new_dcid_on_new_path"}


def test_handshakes_counts_distinct_server_initial_scids():
    t = Trace().handshake().handshake(addr=B, server_scid="s9", client_scid="c9")
    check = cc.handshakes(t.packets, SERVER)
    assert not check.passed and check.details["scids"] == ["s0", "s9"]
    assert cc.handshakes(Trace().handshake().packets, SERVER).passed


def test_versions_only_v1():
    pk = Trace().handshake().packets
    assert cc.versions(pk).passed
    draft = [replace(pk[0], version=0xFF00001D)] + pk[1:]
    assert not cc.versions(draft).passed


def test_paths_needs_two_else_test_broken():
    check = cc.paths(Trace().handshake().c(A, "s0", [STREAM]).packets, SERVER)
    assert not check.passed and "test broken?" in check.observed
    assert cc.paths(migrated(), SERVER).passed


def test_paths_does_not_count_a_second_connection_as_a_migration():
    t = Trace().handshake().handshake(addr=B, server_scid="s9", client_scid="c9")
    check = cc.paths(t.packets, SERVER)
    assert not check.passed and check.details["new_connection_paths"]


def test_direction_accepts_ip_only_and_bracketed_v6():
    assert cc.paths(migrated(), {S_IP}).passed
    t = Trace()
    t._add(("fd00::2", 5), ("fd00::1", 443), "initial", "x", [0x06], 1200, scid="c")
    t._add(("fd00::1", 443), ("fd00::2", 5), "initial", "c", [0x06], 1200, scid="s")
    assert cc.handshakes(t.packets, {"[fd00::1]:443"}).passed
    assert cc.handshakes(t.packets, {"fd00::1"}).passed
    with pytest.raises(ValueError):
        cc.handshakes(t.packets, set())


@pytest.mark.parametrize("rule", ["strict", "pr426"])
def test_challenge_in_first_packet_passes_both_rules(rule):
    assert cc.path_challenge_on_new_path(migrated(), SERVER, rule).passed


def test_ack_only_first_packet_fails_both_rules():
    pk = migrated(first_server=((ACK,), ()))
    assert not cc.path_challenge_on_new_path(pk, SERVER, "strict").passed
    assert not cc.path_challenge_on_new_path(pk, SERVER, "pr426").passed


def test_probing_first_packet_then_challenge_passes_pr426_only():
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING], 40)
    t.s(C, "c1", [NCID, PADDING], 60)  # probing-only first packet, no challenge
    t.s(C, "c1", [CHAL, STREAM], 60, challenge=("bb",))  # challenge together with the first non-probing frame
    t.c(C, "s1", [RESP], 1200, response=("bb",))
    assert not cc.path_challenge_on_new_path(t.packets, SERVER, "strict").passed
    check = cc.path_challenge_on_new_path(t.packets, SERVER, "pr426")
    assert check.passed, check.observed
    assert cc.DEFAULT_CHALLENGE_RULE == "pr426"
    assert cc.path_challenge_on_new_path(t.packets, SERVER).name.endswith("[pr426]")


def test_data_before_challenge_fails_pr426():
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING], 40)
    t.s(C, "c1", [PADDING], 60)
    t.s(C, "c1", [STREAM], 60)
    t.s(C, "c1", [CHAL], 60, challenge=("bb",))
    check = cc.path_challenge_on_new_path(t.packets, SERVER, "pr426")
    assert not check.passed and check.details["failed_paths"]


def test_returning_to_a_known_path_is_not_new():
    pk = migrated()
    t = Trace()
    t.packets, t.frame = list(pk), pk[-1].frame
    t.c(A, "s2", [PING]).s(A, "c2", [ACK])  # back to the first path: no challenge required
    assert cc.path_challenge_on_new_path(t.packets, SERVER, "strict").passed


def test_undecrypted_first_packet_is_not_probing():
    pk = migrated()
    first_server_new = next(p for p in pk if p.dst_ip == C[0])
    pk = [replace(p, decrypted=False, frame_types=(), path_challenge=()) if p is first_server_new else p for p in pk]
    assert not cc.path_challenge_on_new_path(pk, SERVER, "pr426").passed


def test_challenges_answered():
    assert cc.challenges_answered(migrated(), SERVER).passed
    check = cc.challenges_answered(migrated(respond=False), SERVER)
    assert not check.passed and check.details["unanswered"] == ["aa"]
    # no challenge at all is not a pass either
    assert not cc.challenges_answered(Trace().handshake().packets, SERVER).passed


def test_rotation_keeps_addresses_unlinkable():
    # migrated(): the client moves to another IP with a new DCID; reusing the old DCID links them.
    assert cc.unlinkable_across_addresses(migrated(), SERVER).passed
    check = cc.unlinkable_across_addresses(migrated(client_dcid="s0"), SERVER)
    assert not check.passed and check.details["crossing"]


def test_lossy_link_needs_one_answered_challenge_per_path():
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING], 40)
    t.s(C, "c1", [CHAL], 120, challenge=("c1",))  # lost on the way to the client: never answered
    t.s(C, "c1", [CHAL], 120, challenge=("c2",))
    t.c(C, "s1", [RESP], 50, response=("c2",))
    assert not cc.challenges_answered(t.packets, SERVER).passed
    lossy = cc.challenges_answered(t.packets, SERVER, lossy=True)
    assert lossy.passed and lossy.details["unanswered"] == ["c1"]
    # a path with no answer at all fails even on a lossy link
    assert not cc.challenges_answered(migrated(respond=False), SERVER, lossy=True).passed


def test_response_on_other_path_is_flagged_but_answers():
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING], 40)
    t.s(C, "c1", [CHAL], 120, challenge=("cc",))
    t.c(A, "s0", [RESP], 50, response=("cc",))
    assert cc.challenges_answered(t.packets, SERVER).passed
    assert not cc.response_on_challenged_path(t.packets, SERVER).passed


def test_new_dcid_on_new_path():
    assert cc.new_dcid_on_new_path(migrated(), SERVER).passed
    check = cc.new_dcid_on_new_path(migrated(client_dcid="s0"), SERVER)
    assert not check.passed and "reused" in check.observed
    # any earlier DCID counts, not just the previous path's (the interop runner compares with the previous only)
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING]).c(B, "s0", [PING])
    assert not cc.new_dcid_on_new_path(t.packets, SERVER).passed


# --- amplification edge cases ---

def _amp_trace(server_sizes, client_probe=30, respond_after=None):
    t = Trace().handshake()
    t.c(A, "s0", [STREAM])
    t.c(C, "s1", [PING], client_probe)
    for i, size in enumerate(server_sizes):
        if respond_after is not None and i == respond_after:
            t.c(C, "s1", [RESP], 30, response=("dd",))
        t.s(C, "c1", [CHAL] if i == 0 else [STREAM], size, challenge=("dd",) if i == 0 else ())
    return t.packets


def test_amplification_exactly_three_times_passes():
    check = cc.amplification(_amp_trace([90]), SERVER)
    assert check.passed, check.observed
    assert check.details["per_path"]["10.0.2.9:40000<->10.0.0.1:443"]["peak_ratio"] == 3.0


def test_amplification_one_byte_over_fails():
    check = cc.amplification(_amp_trace([91]), SERVER)
    assert not check.passed and "91 B sent > 3 x 30 B" in check.details["violations"][0]


def test_amplification_cumulative_until_response():
    assert not cc.amplification(_amp_trace([60, 40]), SERVER).passed
    assert cc.amplification(_amp_trace([60, 1200, 1200], respond_after=1), SERVER).passed  # 60 <= 3 x (30 + 30)


def test_amplification_counts_coalesced_packets_once():
    t = Trace()
    t.c(A, "odcid", [0x06], 1200, ptype="initial", scid="c0")
    t.s(A, "c0", [0x06], 3600, ptype="initial", scid="s0")
    t.s(A, "c0", [0x06], 3600, ptype="handshake", scid="s0", same_datagram=True)  # same 3600 B datagram
    assert cc.amplification(t.packets, SERVER).passed
    t.s(A, "c0", [0x06], 1, ptype="handshake", scid="s0")
    assert not cc.amplification(t.packets, SERVER).passed


def test_amplification_handshake_path_validated_by_client_handshake_packet():
    t = Trace().handshake()
    t.s(A, "c0", [STREAM], 50_000)
    assert cc.amplification(t.packets, SERVER).passed


def test_amplification_response_on_another_path_validates():
    t = Trace().handshake()
    t.c(A, "s0", [STREAM]).c(C, "s1", [PING], 30)
    t.s(C, "c1", [CHAL], 90, challenge=("ee",))
    t.c(A, "s0", [RESP], 30, response=("ee",))  # RFC 9000 §8.2.3: any path
    t.s(C, "c1", [STREAM], 1200)
    assert cc.amplification(t.packets, SERVER).passed


def test_amplification_server_first_to_unseen_address_fails():
    t = Trace().handshake()
    t.s(C, "c1", [CHAL], 50, challenge=("ff",))
    assert not cc.amplification(t.packets, SERVER).passed


def test_cid_linkability_groups():
    rebind = migrated(new=B, client_dcid="s0", server_dcid="c0")
    groups = cc.linkable_path_groups(rebind, SERVER)
    assert len(groups["client_to_server"]) == 1 and len(groups["client_to_server"][0]) == 2
    assert cc.cid_linkability(rebind, SERVER, "linkable").passed
    assert not cc.cid_linkability(rebind, SERVER, "unlinkable").passed
    rotated = migrated()
    assert cc.cid_linkability(rotated, SERVER, "unlinkable").passed
    assert not cc.cid_linkability(rotated, SERVER, "linkable").passed
    assert cc.cid_linkability(rotated, SERVER).passed  # report only
    # the server reusing the old client CID towards the new address links the paths, too
    leaky = migrated(server_dcid="c0")
    check = cc.cid_linkability(leaky, SERVER, "unlinkable")
    assert not check.passed and "server_to_client: [[" in check.observed


def test_undecrypted_fraction():
    pk = migrated()
    assert cc.undecrypted(pk).passed
    one = next(p for p in pk if p.packet_type == "1rtt")
    bad = [replace(p, decrypted=False, frame_types=()) if p is one else p for p in pk]
    check = cc.undecrypted(bad)
    assert not check.passed and check.details["undecrypted_1rtt"] == 1 and "unreliable" in check.observed
    assert cc.undecrypted(bad, max_fraction=0.5).passed


def test_summarize_facts():
    facts = cc.summarize(migrated(), SERVER)
    assert facts["path_count"] == 2
    assert [c["data"] for c in facts["path_challenges"]] == ["aa"]
    assert [r["data"] for r in facts["path_responses"]] == ["aa"]
    assert facts["client_dcids_by_path"]["10.0.2.9:40000<->10.0.0.1:443"] == ["s1"]
    t = facts["tuples"]["10.0.2.9:40000->10.0.0.1:443"]
    assert t["packets"] == 2 and t["dcids"] == ["s1"] and t["first_time"] <= t["last_time"]
    assert "paths" not in cc.summarize(migrated())


def test_parse_tshark_json_keeps_coalesced_packets_and_duplicate_keys():
    text = """[{"_source": {"layers": {
      "frame": {"frame.number": "7", "frame.time_epoch": "1.5"},
      "ip": {"ip.src": "10.0.0.1", "ip.dst": "10.0.1.2"},
      "udp": {"udp.srcport": "443", "udp.dstport": "50000", "udp.length": "1208"},
      "quic": {"quic.packet_length": "100", "quic.header_form": "1", "quic.long.packet_type": "0",
               "quic.version": "0x00000001", "quic.dcid": "aa:bb", "quic.scid": "cc:dd", "quic.packet_number": "0",
               "quic.frame": {"quic.frame_type": "2"}, "quic.frame": {"quic.frame_type": "6"}},
      "quic": {"quic.packet_length": "60", "quic.short": {"quic.header_form": "0", "quic.dcid": "aa:bb",
               "quic.packet_number": "3"},
               "quic.frame": {"quic.frame_type": "26", "quic.path_challenge.data": "01:02"},
               "quic.frame": {"quic.frame_type": "24", "quic.nci.sequence": "4"},
               "quic.frame": {"quic.frame_type": "25", "quic.rci.sequence": "0"}},
      "quic": {"_ws.expert": {"quic.coalesced_padding_data": ""}}
    }}}]"""
    first, second = parse_tshark_json(text)
    assert (first.packet_type, first.version, first.dcid, first.scid, first.frame_types) == \
        ("initial", 1, "aabb", "ccdd", (2, 6))
    assert first.udp_payload_length == second.udp_payload_length == 1200
    assert (second.packet_type, second.index_in_datagram, second.path_challenge) == ("1rtt", 1, ("0102",))
    assert second.new_connection_id_seqs == (4,) and second.retire_connection_id_seqs == (0,)
    assert second.frame_names == ("path_challenge", "new_connection_id", "retire_connection_id")
    assert parse_tshark_json("") == []


# --- committed captures through real tshark ------------------------------------------------------------------------

CAPTURES = Path(__file__).resolve().parent.parent / "data" / "captures"
PORT = 47433  # tools/record_capture.py default
LOOPBACK_SERVER = {f"127.0.0.1:{PORT}"}
# The judging tshark is the lab image's (lab.verify.tshark), so these need Docker and the image.
needs_tshark = pytest.mark.integration


def _read(name: str, keylog: str | None = None) -> list[QuicPacket]:
    return read_quic_packets(CAPTURES / name, CAPTURES / keylog if keylog else None, [PORT])


@needs_tshark
@pytest.mark.parametrize("name,linkable,active", [("rebind-port.pcapng", "linkable", False),
                                                  ("rebind-addr.pcapng", "unlinkable", True)])
def test_good_captures_pass_every_check(name, linkable, active):
    packets = _read(name)
    checks = cc.run_all(packets, LOOPBACK_SERVER, active_migration=active, expect_linkable=linkable)
    checks.append(cc.path_challenge_on_new_path(packets, LOOPBACK_SERVER, "strict"))
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


@needs_tshark
def test_rebind_port_keeps_dcid_rebind_addr_changes_it():
    port = _read("rebind-port.pcapng")
    addr = _read("rebind-addr.pcapng")
    assert not cc.new_dcid_on_new_path(port, LOOPBACK_SERVER).passed
    assert cc.new_dcid_on_new_path(addr, LOOPBACK_SERVER).passed
    port_groups = cc.linkable_path_groups(port, LOOPBACK_SERVER)["client_to_server"]
    addr_groups = cc.linkable_path_groups(addr, LOOPBACK_SERVER)["client_to_server"]
    assert [len(g) for g in port_groups] == [2]
    assert [len(g) for g in addr_groups] == [1, 1]
    assert addr_groups[1][0][0] == "127.0.0.2"


@needs_tshark
def test_tshark_4_0_decrypts_the_migrated_path():
    for name in ("rebind-port.pcapng", "rebind-addr.pcapng"):
        packets = _read(name)
        (cip, cport, _, _), = cc.paths(packets, LOOPBACK_SERVER).details["migrated_paths"]
        on_new = [p for p in packets if (cip, cport) in ((p.src_ip, p.src_port), (p.dst_ip, p.dst_port))]
        assert len(on_new) > 50 and all(p.decrypted for p in on_new)
        assert any(p.path_challenge for p in on_new) and any(p.path_response for p in on_new)


@needs_tshark
def test_broken_capture_fails_challenges_answered():
    packets = _read("unanswered-challenge.pcapng")
    check = cc.challenges_answered(packets, LOOPBACK_SERVER)
    assert not check.passed and len(check.details["unanswered"]) == 1
    # without a PATH_RESPONSE the new path never validates, so the server's data exceeds 3x too
    assert not cc.amplification(packets, LOOPBACK_SERVER).passed
    assert cc.undecrypted(packets).passed and cc.handshakes(packets, LOOPBACK_SERVER).passed


@needs_tshark
def test_second_handshake_and_keylog_option():
    packets = _read("two-handshakes.pcap", "two-handshakes.keys.log")
    assert cc.undecrypted(packets).passed
    assert not cc.handshakes(packets, LOOPBACK_SERVER).passed
    assert cc.handshakes(packets, LOOPBACK_SERVER, expected=2).passed
    # without keys: reported as undecrypted, not silently "no frames"
    blind = _read("two-handshakes.pcap")
    check = cc.undecrypted(blind)
    assert not check.passed and check.details["fraction"] == 1.0


@needs_tshark
def test_prepare_captures_injects_the_keylog_and_merges_the_server_side(tmp_path):
    from lab.verify.pcap import prepare_captures

    (tmp_path / "captures").mkdir()
    (tmp_path / "client").mkdir()
    shutil.copy(CAPTURES / "two-handshakes.pcap", tmp_path / "captures" / "r-wan.pcap")
    shutil.copy(CAPTURES / "two-handshakes.pcap", tmp_path / "captures" / "r-lan.pcap")
    shutil.copy(CAPTURES / "two-handshakes.keys.log", tmp_path / "client" / "keys-quic.log")
    files = prepare_captures(tmp_path)
    assert [f.name for f in files] == ["r-lan.pcapng", "r-wan.pcapng", "server-side.pcapng"]
    assert not list((tmp_path / "captures").glob("*.pcap"))  # raw copies replaced by the keyed pcapng
    packets = read_quic_packets(tmp_path / "captures" / "server-side.pcapng", None, [PORT])
    assert packets and cc.undecrypted(packets).passed  # decrypts with no key log given: the keys are inside


def test_tshark_command_shape():
    cmd = tshark_args("x.pcapng", "k.log", [443, 4433, 443])
    assert cmd[:4] == ["tshark", "-n", "-r", "x.pcapng"]
    assert cmd.count("-d") == 2 and "udp.port==4433,quic" in cmd and "tls.keylog_file:k.log" in cmd
    assert cmd[-4:] == ["-T", "json", "-J", "frame ip ipv6 udp quic"]


@needs_tshark
def test_missing_image_is_a_clear_error():
    from lab.verify import pcap

    with pytest.raises(pcap.TsharkError, match="make images"):
        pcap.read_quic_packets(CAPTURES / "rebind-port.pcapng", None, [PORT],
                               pcap.ImageTools("quic-migration-lab:no-such-tag"))
