"""When a run may stop listening after its clients are done: ``lab.scenario.runner.server_settled``."""

from __future__ import annotations

from lab import events as ev
from lab.scenario.runner import server_settled

START = 100.0


def opened(conn: str, ts: float = START + 1, role: str = "server", transport: str = "quic") -> ev.Event:
    return ev.HandshakeCompleted(ts=ts, role=role, conn=conn, transport=transport)


def closed(conn: str, ts: float = START + 3, role: str = "server", transport: str = "quic") -> ev.Event:
    return ev.ConnectionClosed(ts=ts, role=role, conn=conn, transport=transport, reason="workload done")


def test_settled_once_every_connection_the_server_reported_has_closed() -> None:
    timeline = [opened("aa"), ev.Progress(ts=START + 2, role="server", conn="aa", bytes=10),
                opened("bb", transport="tcp")]
    assert not server_settled(timeline, START)
    timeline.append(closed("aa"))
    assert not server_settled(timeline, START)  # the TCP connection is still open
    timeline.append(closed("bb", transport="tcp"))
    assert server_settled(timeline, START)


def test_nothing_from_the_server_is_never_settled() -> None:
    # A server that reported nothing (a foreign one, a log stream that broke) cannot say it is done.
    assert not server_settled([], START)
    assert not server_settled([opened("cc", role="client"), closed("cc", role="client")], START)


def test_only_this_runs_events_count() -> None:
    # The previous run's connection, closed by the reset before this run began, tells nothing.
    earlier = [opened("old", ts=START - 5), closed("old", ts=START - 1)]
    assert not server_settled(earlier, START)
    # ... and one of its connections still open is not waited for.
    assert server_settled([opened("old", ts=START - 5), opened("aa"), closed("aa")], START)


def test_a_close_is_enough_when_the_opening_came_before_the_start() -> None:
    assert server_settled([closed("aa")], START)
