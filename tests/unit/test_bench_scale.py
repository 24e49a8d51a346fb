"""bench scale's figures (pure): each connection judged on its own events, the rounds' summaries."""

from __future__ import annotations

import pytest

from lab import events as ev
from lab.bench import scale
from lab.cli import main

CHANGE = 100.0


def events(handshakes: int = 1, sha_ok: bool = True, gaps: tuple[tuple[float, float], ...] = ((100.1, 100.3),),
           done: bool = True) -> list[ev.Event]:
    found: list[ev.Event] = [ev.HandshakeCompleted(role="client") for _ in range(handshakes)]
    found += [ev.DataGap(role="client", start_ts=a, end_ts=b, gap_ms=(b - a) * 1000) for a, b in gaps]
    if done:
        found.append(ev.TransferComplete(role="client", ok=sha_ok, sha256="ab",
                                         expected_sha256="ab" if sha_ok else "cd"))
    return found


def test_a_connection_survives_on_its_own_evidence_only() -> None:
    good = scale.connection(1, events(), CHANGE)
    assert good.survived and good.disruption_ms == pytest.approx(200.0)
    assert not scale.connection(2, events(handshakes=2), CHANGE).survived  # it reconnected
    assert not scale.connection(3, events(sha_ok=False), CHANGE).survived  # bytes differ
    assert not scale.connection(4, events(done=False), CHANGE).survived  # never finished
    errored = events() + [ev.Error(role="client", message="boom")]
    assert not scale.connection(5, errored, CHANGE).survived


def test_only_gaps_from_the_change_on_count_and_one_across_it_counts_from_the_change() -> None:
    before = scale.connection(1, events(gaps=((90.0, 99.0),)), CHANGE)
    assert before.disruption_ms is None  # a gap that ended before the change is not the change's
    across = scale.connection(2, events(gaps=((99.9, 100.4),)), CHANGE)
    assert across.disruption_ms == pytest.approx(400.0)


def test_a_round_reports_percentiles_cpu_per_connection_and_its_failures() -> None:
    connections = tuple(scale.connection(i, events(gaps=((100.0, 100.0 + i / 10),)), CHANGE) for i in range(1, 11))
    broken = scale.connection(11, events(handshakes=2), CHANGE)
    r = scale.Round("rebinding", 11, scale.rate_for(11), connections + (broken,), server_cpu_s=2.2, duration_s=9.0)
    s = r.summary()
    assert s["survived"] == 10 and [f["index"] for f in s["failed"]] == [11]
    # Every connection's gap counts, the broken one's (200 ms) too.
    assert s["disruption_ms"]["max"] == pytest.approx(1000.0) and s["disruption_ms"]["p50"] == pytest.approx(500.0)
    assert s["server_cpu_ms_per_connection"] == 200.0
    assert "10/11 survived" in scale.table([r])[1]


def test_pacing_shares_what_two_cores_carry() -> None:
    assert scale.rate_for(1) == scale.rate_for(10) == 200_000
    assert scale.rate_for(100) == 20_000 and scale.gap_floor_ms(20_000) == 60.0


@pytest.mark.parametrize("option, message", [
    (["--connections", "0"], "--connections: '0' is not a count; allowed: whole numbers 1-200"),
    (["--connections", "ten"], "--connections: 'ten' is not a count"),
    (["--changes", "teleport"], "--changes: teleport; allowed: handoff, rebinding"),
])
def test_bad_scale_options_are_one_line(option, message, capsys, monkeypatch) -> None:
    monkeypatch.setattr("lab.cli.bench.Lab", lambda topology: (_ for _ in ()).throw(AssertionError("reached")))
    assert main(["bench", "scale", *option]) == 2
    assert capsys.readouterr().err.startswith(f"error: {message}")
