"""The impairment core without Docker: profiles, resolution, command plans, read-back, delay line timing."""

from __future__ import annotations

import argparse
import random

import pytest

from lab.cli import LabError
from lab.cli.impair import impairment_from_args
from lab.control.base import ActionError
from lab.control.impair import (
    FALLBACK,
    NETEM,
    PROFILES,
    TAG,
    LinkParams,
    parse_qdisc,
    parse_readback,
    plan,
    queue_number,
    removal_commands,
    resolve,
    tbf_burst,
)
from lab.endpoints.router.delayline import DelayLine
from lab.scenario.schema import Impairment

LAN, WAN, SUBNET = "eth0", "eth1", "10.203.1.0/24"


def test_resolve_profile_then_overrides():
    params = resolve(Impairment(profile="3g", loss=0.0, delay=0.05))
    assert params.delay == 0.05 and params.loss == 0.0
    assert params.rate == PROFILES["3g"].rate and params.profile == "3g"


def test_resolve_plain_fields_and_defaults():
    assert resolve(Impairment()) == LinkParams()
    assert resolve(None) == LinkParams()  # a step without an impairment
    assert resolve(Impairment()).clear
    params = resolve(Impairment(delay=0.02, jitter=0.005, loss=3, rate=10_000_000, blackhole=True))
    assert (params.delay, params.jitter, params.loss, params.rate, params.blackhole) == (0.02, 0.005, 3.0,
                                                                                       10_000_000, True)


@pytest.mark.parametrize("impairment, words", [
    (Impairment(profile="5g"), "allowed: wifi"),
    (Impairment(loss=150), "between 0 and 100"),
    (Impairment(delay=-1), "negative"),
    (Impairment(rate=10), "at least 8kbit"),
])
def test_resolve_rejects(impairment, words):
    with pytest.raises(ValueError, match=words):
        resolve(impairment)


def test_every_profile_resolves_and_is_shaped():
    for name in PROFILES:
        assert resolve(Impairment(profile=name)).shaped


def test_netem_plan_both_interfaces_one_qdisc_each():
    commands = plan(NETEM, resolve(Impairment(delay=0.02, jitter=0.005, loss=1, rate=10_000_000)), LAN, WAN, SUBNET)
    assert [c[4] for c in commands] == [LAN, WAN]
    for command in commands:
        assert command[:3] == ["tc", "qdisc", "replace"] and "netem" in command
        text = " ".join(command)
        assert "delay 20ms 5ms" in text and "loss 1%" in text and "rate 10000000bit" in text


def test_netem_plan_for_no_impairment_is_empty():
    assert plan(NETEM, LinkParams(), LAN, WAN, SUBNET) == []
    assert plan(FALLBACK, LinkParams(blackhole=True), LAN, WAN, SUBNET) == []


def test_fallback_plan_mechanisms():
    commands = plan(FALLBACK, resolve(Impairment(delay=0.025, jitter=0.002, loss=5, rate=2_000_000)),
                    LAN, WAN, SUBNET, queue=3)
    assert commands[0] == ["python", "-m", "lab.endpoints.router.delayline", "--queue", "3", "--delay-ms", "25",
                           "--jitter-ms", "2"]
    queued = [c for c in commands if "NFQUEUE" in c]
    assert len(queued) == 2 and {c[c.index("-i") + 1] for c in queued} == {LAN, WAN}
    assert all("--queue-bypass" in c and ["-t", "raw"] == c[2:4] and TAG in c for c in queued)
    lossy = [c for c in commands if "statistic" in c]
    assert len(lossy) == 2 and all(c[c.index("--probability") + 1] == "0.05" and c[-1] == "DROP" for c in lossy)
    assert any("-i" in c and LAN in c for c in lossy) and any("-o" in c and LAN in c for c in lossy)
    shaped = [c for c in commands if "tbf" in c]
    assert [c[4] for c in shaped] == [LAN, WAN] and all("2000000bit" in c for c in shaped)


def test_fallback_plan_without_delay_starts_no_delay_line():
    commands = plan(FALLBACK, resolve(Impairment(loss=1)), LAN, WAN, SUBNET)
    assert not any("lab.endpoints.router.delayline" in c for c in commands)


def test_plan_rejects_unknown_mode():
    with pytest.raises(ValueError, match="allowed: netem, fallback"):
        plan("magic", LinkParams(delay=0.01), LAN, WAN, SUBNET)


def test_queue_numbers_are_stable_and_distinct():
    networks = ["home", "cellular", "office"]
    assert sorted(queue_number(networks, n) for n in networks) == [1, 2, 3]
    assert queue_number(networks, "cellular") == queue_number(list(reversed(networks)), "cellular")


def test_tbf_burst_is_above_an_mtu():
    assert tbf_burst(50_000) == 4000 and tbf_burst(100_000_000) == 125_000


FILTER = """-P FORWARD DROP
-A FORWARD -o eth0 -m statistic --mode random --probability 0.05000000000 -m comment --comment lab-impair -j DROP
-A FORWARD -i eth0 -s 10.203.1.0/24 -m statistic --mode random --probability 0.05000000000 -m comment \
--comment lab-impair -j DROP
-A FORWARD -o eth0 -m comment --comment lab-blackhole -j DROP
-A FORWARD -i eth0 -m comment --comment lab-blackhole -j DROP
-A FORWARD -i eth0 -o eth1 -s 10.203.1.0/24 -j ACCEPT
"""
RAW = """-P PREROUTING ACCEPT
-A PREROUTING -i eth0 -m comment --comment lab-impair -j NFQUEUE --queue-num 1 --queue-bypass
-A PREROUTING -i eth1 -m comment --comment lab-impair -j NFQUEUE --queue-num 1 --queue-bypass
"""
# `tc -j qdisc show dev X` (iproute2 6.1): the tbf line as printed live, the netem one in the shape of
# iproute2's tc/q_netem.c (seconds, loss as a fraction, rates in bytes per second).
TBF = '[{"kind":"tbf","handle":"8001:","root":true,"refcnt":2,"options":{"rate":1250000,"burst":12500,"lat":100000}}]'
NETEM_OUT = ('[{"kind":"netem","handle":"8002:","root":true,"refcnt":2,"options":{"limit":10000,'
             '"delay":{"delay":0.02,"jitter":0.005,"correlation":0},"loss-random":{"loss":0.0099999999,'
             '"correlation":0},"rate":{"rate":93750,"packetoverhead":0,"cellsize":0,"celloverhead":0},'
             '"ecn":false,"gap":0}}]')
NOQUEUE = '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]'


def test_removal_deletes_only_tagged_rules_and_root_qdiscs():
    commands = removal_commands(FILTER, RAW, LAN, WAN)
    deletes = [c for c in commands if c[0] == "iptables"]
    assert len(deletes) == 4 and all("-D" in c and TAG in c for c in deletes)
    assert {c[3] for c in deletes} == {"filter", "raw"}
    assert not any("lab-blackhole" in c for c in commands)
    assert ["tc", "qdisc", "del", "dev", LAN, "root"] in commands and ["tc", "qdisc", "del", "dev", WAN, "root"] \
        in commands


def test_parse_qdisc_json():
    assert parse_qdisc(TBF) == {"kind": "tbf", "rate": 10_000_000}
    assert parse_qdisc(NETEM_OUT) == {"kind": "netem", "delay": 0.02, "jitter": 0.005, "loss": 1.0, "rate": 750_000}
    assert parse_qdisc(NOQUEUE) == {"kind": "noqueue"}
    assert parse_qdisc("") == parse_qdisc("[]") == {"kind": None}
    no_jitter = NETEM_OUT.replace('"jitter":0.005', '"jitter":0')
    assert "jitter" not in parse_qdisc(no_jitter)
    child = '[{"kind":"tbf","handle":"1:","parent":"8001:","options":{"rate":1}},' + NOQUEUE[1:]
    assert parse_qdisc(child) == {"kind": "noqueue"}  # only the root qdisc counts
    with pytest.raises(ActionError, match="tc -j"):
        parse_qdisc("qdisc noqueue 0: root refcnt 2")


def test_readback_fallback():
    state = {"pid": 7, "queue": 1, "delay_ms": 25.0, "jitter_ms": 2.0, "packets": 10, "alive": True}
    found = parse_readback(FALLBACK, TBF, TBF, FILTER, RAW, state, LAN)
    assert (found["delay_ms"], found["jitter_ms"], found["loss_pct"], found["rate_bit"], found["blackhole"]) == \
        (25.0, 2.0, 5.0, 10_000_000, True)
    assert set(found["mechanisms"]) == {"delayline", "iptables_statistic", "tbf"}
    assert found["mechanisms"]["delayline"]["alive"]


def test_readback_netem_and_clear():
    found = parse_readback(NETEM, NETEM_OUT, NETEM_OUT, "-P FORWARD DROP\n", "", None, LAN)
    assert (found["delay_ms"], found["jitter_ms"], found["loss_pct"], found["rate_bit"]) == (20.0, 5.0, 1.0, 750_000)
    clear = parse_readback(FALLBACK, NOQUEUE, "", "-P FORWARD DROP\n", "", None, LAN)
    assert clear["mechanisms"] == {} and not clear["blackhole"] and clear["rate_bit"] is None


def test_delay_line_holds_for_the_delay_in_order():
    line = DelayLine(1, delay=0.025)
    for i, t in enumerate((0.0, 0.001, 0.002)):
        line.hold(i + 1, t)
    assert line.due(0.0249) == []
    assert line.due(0.0265) == [1, 2]
    assert line.due(1.0) == [3] and line.packets == 3 and line.max_held == 3


def test_delay_line_jitter_is_bounded_and_may_reorder():
    line = DelayLine(1, delay=0.010, jitter=0.005, rng=random.Random(4))
    times = [line.release_time(0.0) for _ in range(2000)]
    assert min(times) >= 0.005 and max(times) <= 0.015
    assert abs(sum(times) / len(times) - 0.010) < 0.0005
    line = DelayLine(1, delay=0.001, jitter=0.005, rng=random.Random(1))
    assert min(line.release_time(0.0) for _ in range(200)) == 0.0  # never before arrival


def _args(**kw):
    base = {"profile": None, "delay": None, "jitter": None, "loss": None, "rate": None, "blackhole": False}
    return argparse.Namespace(**{**base, **kw})


def test_cli_options_to_impairment():
    imp = impairment_from_args(_args(delay="40ms", jitter="5ms", loss="3%", rate="10mbit", profile="wifi"))
    assert imp == Impairment(delay=0.04, jitter=0.005, loss=3.0, rate=10_000_000, profile="wifi")


@pytest.mark.parametrize("kw, message", [
    ({"delay": "40"}, "--delay: .*write e.g. 500ms"),
    ({"loss": "x"}, "--loss: not a percentage"),
    ({"rate": "fast"}, "--rate: .*10mbit"),
    ({"profile": "5g"}, "--profile '5g' is not known; allowed: wifi, lte"),
])
def test_cli_bad_options_name_the_option(kw, message):
    with pytest.raises(LabError, match=message) as caught:
        impairment_from_args(_args(**kw))
    assert "\n" not in str(caught.value)
