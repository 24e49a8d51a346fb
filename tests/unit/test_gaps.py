"""The gap meter resolves every gap to 1 ms, and the noise floor separates the lab's noise from migrations."""

from __future__ import annotations

import socket
import time

from lab.endpoints.shared.gaps import SOCKET_WAIT, GapMeter, LoopStallMeter, ReceiveClock
from lab.events import Action, DataGap, GapHistogram
from lab.observe.timeline import Timeline
from lab.report.metrics import noise_floor


def test_every_gap_is_counted_to_the_millisecond_and_long_ones_are_reported():
    meter = GapMeter(threshold_s=0.005)
    arrivals = [0.0, 0.0004, 0.0021, 0.0050, 0.0130, 0.0131]  # gaps 0.4, 1.7, 2.9, 8.0, 0.1 ms
    reported = [found for t in arrivals if (found := meter.arrival(t, 100 + t)) is not None]
    assert reported == [(100.005, 100.013, 8.0)]
    histogram = meter.histogram()
    assert histogram["counts"] == {"1": 1, "2": 1, "8": 1} and histogram["samples"] == 5
    assert histogram["max_ms"] == 8.0 and histogram["threshold_ms"] == 5.0


def _gap(start: float, ms: float) -> DataGap:
    return DataGap(ts=start + ms / 1000, role="client", start_ts=start, end_ts=start + ms / 1000, gap_ms=ms)


def _histogram(max_ms: float) -> GapHistogram:
    return GapHistogram(ts=20.0, role="client", counts={str(int(max_ms)): 1}, samples=100, max_ms=max_ms,
                        threshold_ms=5.0)


def test_the_noise_floor_leaves_out_the_gap_a_network_change_caused():
    change = Action(ts=10.0, role="controller", transport="", action="disconnect", target="home",
                    detail={"took_ms": 300})
    timeline = Timeline.from_streams([change, _gap(9.9, 700), _gap(4.0, 12), _gap(15.0, 30), _histogram(700)])
    assert noise_floor(timeline) == (30, False)  # the 700 ms disruption is not noise; 12 and 30 ms are


def test_without_a_change_the_histogram_gives_the_floor_and_below_threshold_is_a_bound():
    assert noise_floor(Timeline.from_streams([_histogram(3.2)])) == (3.2, False)
    change = Action(ts=10.0, role="controller", transport="", action="rebind", target="home-router",
                    detail={"took_ms": 50})
    assert noise_floor(Timeline.from_streams([change, _gap(10.01, 200), _histogram(200)])) == (5.0, True)
    assert noise_floor(Timeline()) == (None, False)


def test_an_arrival_timed_earlier_than_the_last_neither_counts_as_a_gap_nor_moves_the_last_back():
    meter = GapMeter(threshold_s=0.005)
    for t in (0.0, 0.010, 0.004):  # the third timed by another clock, before the second
        meter.arrival(t, 100 + t)
    assert meter.last_mono == 0.010 and meter.samples == 2 and meter.counts == {10: 1}
    assert meter.arrival(0.016, 100.016) == (100.01, 100.016, 6.0)  # measured from 0.010, not 0.004


def _pair() -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    return receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def test_the_receive_clock_gives_when_the_kernel_received_a_datagram_not_when_it_was_read():
    receiver, sender = _pair()
    with receiver, sender:
        clock = ReceiveClock()
        clock.attach(receiver.fileno())
        # The kernel turns receive stamps on in a work item after the first ioctl: a datagram
        # arriving before that has none, and the ioctl then gives the read's time (ReceiveClock).
        time.sleep(0.05)
        sender.sendto(b"x", receiver.getsockname())
        sent = time.monotonic()
        time.sleep(0.05)  # the datagram waits in the socket, as behind a busy loop
        receiver.recvfrom(16)
        mono, wall = clock.stamp()
        assert sent - 0.002 <= mono <= sent + 0.01  # arrival, not the read 50 ms later
        assert abs((time.time() - wall) - (time.monotonic() - mono)) < 0.002
        assert clock.stamp() is None  # the same datagram's stamp again: another socket's read, not timed


def test_a_datagram_read_from_another_socket_than_the_attached_one_is_not_given_its_stamp():
    old, sender = _pair()
    new, _ = _pair()
    with old, new, sender:
        clock = ReceiveClock()
        clock.attach(old.fileno())
        sender.sendto(b"1", old.getsockname())
        time.sleep(0.01)
        old.recvfrom(16)
        assert clock.stamp() is not None
        clock.attach(new.fileno())  # migrated: the next read may still be from the old socket
        sender.sendto(b"2", old.getsockname())
        time.sleep(0.01)
        old.recvfrom(16)
        assert clock.stamp() is None  # the new socket has received nothing: no stamp to borrow
        sender.sendto(b"3", new.getsockname())
        time.sleep(0.01)
        new.recvfrom(16)
        assert clock.stamp() is not None
        sender.sendto(b"4", old.getsockname())
        time.sleep(0.01)
        old.recvfrom(16)
        assert clock.stamp() is None  # the new socket's stamp is "3"'s, already taken


def test_a_wait_in_the_socket_of_the_threshold_or_more_is_kept_as_a_stall():
    meter = LoopStallMeter(threshold_s=0.003)
    meter.received(10.0, 10.002)
    meter.received(11.0, 11.0045)
    assert [(s.start, s.ms, s.what) for s in meter.found] == [(11.0, 4.5, SOCKET_WAIT)]


def _action(ts: float, took_ms: float, action: str = "connect") -> Action:
    return Action(ts=ts, role="controller", transport="", action=action, target="cellular",
                  detail={"took_ms": took_ms})


def test_recovery_is_what_follows_the_last_change_or_the_start_of_one_still_under_way():
    from lab.report.metrics import recovery_ms

    disconnect, connect = _action(2.0, 300, "disconnect"), _action(2.6, 330)
    # Data back at 3.1 s, after the connect ended at 2.93 s: 170 ms of the gap follow the change.
    assert recovery_ms(Timeline.from_streams([disconnect, connect]), 2.05, 3.1) == 170.0
    # Data back at 2.9 s, while the connect was still under way: the network was usable no earlier
    # than the connect's start, 300 ms before (from the disconnect's end, 600 ms, would charge the
    # protocol for Docker's connect).
    assert recovery_ms(Timeline.from_streams([disconnect, connect]), 2.05, 2.9) == 300.0
    # No action in progress at the gap's end, and none done within it: the whole gap.
    assert recovery_ms(Timeline.from_streams([_action(1.0, 100)]), 2.05, 2.9) == 850.0
