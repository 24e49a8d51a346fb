"""Metrics of one run, computed from its observed timeline.

Pure: the numbers the report prints and plots are functions of the events, nothing else, so the
same recorded timeline always gives the same report and the numbers can be unit-tested. Relative
times are seconds from ``t0`` (by default the timeline's first event), the same zero for the
goodput series and the network-event markers so that they line up on one plot.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.addresses import host_of
from lab.events import (
    Action,
    DataGap,
    EchoRtt,
    GapHistogram,
    HandshakeCompleted,
    MigrationCompleted,
    PathValidated,
    PeerCidChanged,
    ProbeSent,
    Progress,
    Reconnected,
    ReconnectStarted,
    TransferComplete,
)
from lab.observe.timeline import NETWORK_ACTIONS, Timeline
from lab.report.call import caller_figures
from lab.report.player import playback, segments_of, viewer_figures


@dataclass(frozen=True)
class Metrics:
    """What a run achieved. ``None`` means "not observed", never zero."""

    transport: str | None = None
    disruption_ms: float | None = None  # largest client data gap after the first network action
    disruption_ongoing: bool = False  # data never resumed: disruption_ms is a lower bound
    recovery_ms: float | None = None  # part of that gap after the last network action had completed
    validation_ms: float | None = None  # slowest path validation (server, or client for a preferred address)
    handshakes: int = 0  # client handshake_completed events (1 for a surviving QUIC connection)
    paths_seen: int = 0  # distinct client ip:port at the server
    ips_seen: int = 0  # distinct client IPs at the server
    paths_validated: int = 0
    cid_changes: int = 0  # client DCID switches
    migrations: int = 0  # client migration_completed events
    bytes: int = 0  # bytes the client received
    duration_s: float | None = None  # first to last client data
    goodput_mbps: float | None = None
    reconnects: int = 0
    time_to_first_byte_ms: float | None = None  # from the client's handshake to its first data
    echo_rtt_ms_median: float | None = None
    echo_rtt_ms_max: float | None = None
    network_actions: int = 0
    first_action_s: float | None = None  # relative time of the first network-changing action
    noise_floor_ms: float | None = None  # longest data gap outside every network change (see noise_floor)
    noise_floor_below: bool = False  # no gap outside the changes reached the meter's threshold: < noise_floor_ms
    probes: int = 0  # PINGs the client sent after its detection delay of silence (probe_sent)
    detection_delay_ms: float | None = None  # the client's detection delay, as its probe_sent events state it
    # What a viewer saw (video workload; lab.report.player): None without segment events.
    startup_ms: float | None = None
    rebuffer_events: int | None = None
    rebuffer_ms: float | None = None  # every stall together
    max_rebuffer_ms: float | None = None
    viewer: dict[str, Any] | None = None  # every playback figure: stalls, buffer series, per-segment times
    # What a caller heard (call workload; lab.report.call): None without a call_stats event.
    freeze_ms: float | None = None  # the longest time without an arriving message, either way
    caller: dict[str, Any] | None = None  # latency percentiles, losses, each freeze and the change it followed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NetworkMarker:
    """A controller action placed on the run's time axis (for plot markers and the narration)."""

    t: float  # seconds from t0
    action: str
    target: str
    ok: bool = True
    network_changing: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


def _zero(timeline: Timeline, t0: float | None) -> float:
    return t0 if t0 is not None else (timeline.start or 0.0)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def recovery_ms(view: Timeline, gap_start: float, gap_end: float) -> float:
    """The part of a data gap after the network was usable again: from the completion of the last
    network-changing action inside the gap to the data's return.

    The lab's own actions take time (a Docker network connect is about half a second), and so
    does the world's (a phone joining a cell); what the transport protocol adds is what follows.
    Data can come back while an action is still under way: the client used the cellular network
    of a connect before the Docker API returned. The network was then usable at some moment of that
    action, and no earlier than its start, so the recovery is measured from its start: an upper
    bound, never less than the truth, and not the time since an earlier action's end, which would
    charge the protocol for Docker's connect.
    """
    usable = gap_start
    for event in view.actions(network_only=True):
        assert isinstance(event, Action)
        done = event.ts + float(event.detail.get("took_ms", 0.0)) / 1000.0
        if event.ts < gap_end < done:
            usable = max(usable, event.ts)
        elif gap_start <= done <= gap_end:
            usable = max(usable, done)
    return round((gap_end - usable) * 1000.0, 3)


def noise_floor(view: Timeline) -> tuple[float | None, bool]:
    """The longest gap in the client's data outside every network change: the lab's own noise.

    A change's window runs from its action's start to its end (``took_ms``); a measured gap that
    overlaps a window is that change's disruption, any other is noise. Without any network change
    the client's gap histogram gives the longest gap to 1 ms. Returns ``(ms, below)``: ``below``
    means no gap outside the changes reached the meter's threshold, which ``ms`` then is.
    """
    windows = [(a.ts, a.ts + float(a.detail.get("took_ms") or 0.0) / 1000.0) for a in view.actions(network_only=True)]
    gaps = [e for e in view.of(DataGap, "client") if isinstance(e, DataGap)]
    noise = [g.gap_ms for g in gaps if not any(g.start_ts <= end and g.end_ts >= start for start, end in windows)]
    histogram = view.last(GapHistogram, "client")
    if noise:
        return max(noise), False
    if isinstance(histogram, GapHistogram):
        if not windows:
            return histogram.max_ms, False
        return histogram.threshold_ms, True
    return None, False


def compute_metrics(timeline: Timeline, transport: str | None = None, t0: float | None = None) -> Metrics:
    """The metrics of one run; with ``transport``, of that transport's endpoints only."""
    view = timeline.for_transport(transport) if transport else timeline
    zero = _zero(view, t0)

    action = view.first_network_action()
    disruption = ongoing = recovery = None
    if action is not None:
        gap = view.largest_gap(action.ts)
        disruption = gap.gap_ms if gap else 0.0
        ongoing = gap.ongoing if gap else False
        if gap is not None and not gap.ongoing:
            recovery = recovery_ms(view, gap.start_ts, gap.end_ts)

    validations = [e.validation_ms for e in view.of(PathValidated)
                   if isinstance(e, PathValidated) and e.validation_ms is not None]

    peers: list[str] = []
    for event in view.by_role("server"):
        address = getattr(event, "new_peer", None) or getattr(event, "peer", None)
        if event.TYPE in ("handshake_completed", "path_discovered", "active_path_changed") and address:
            if address not in peers:
                peers.append(address)

    progress = [e for e in view.of(Progress, "client") if isinstance(e, Progress)]
    done = view.first(TransferComplete, "client")
    received = done.bytes if isinstance(done, TransferComplete) else (max(p.bytes for p in progress)
                                                                       if progress else 0)
    duration_s = goodput = None
    if isinstance(done, TransferComplete) and done.duration_ms:
        duration_s = done.duration_ms / 1000.0
    elif len(progress) >= 2:
        duration_s = progress[-1].ts - progress[0].ts
    if duration_s and received:
        goodput = received * 8 / duration_s / 1e6

    ttfb = None
    handshake = view.first(HandshakeCompleted, "client")
    first_data = next((p for p in progress if p.bytes > 0), None) or view.first(EchoRtt, "client")
    if handshake is not None and first_data is not None:
        ttfb = (first_data.ts - handshake.ts) * 1000.0

    rtts = [e.rtt_ms for e in view.of(EchoRtt, "client") if isinstance(e, EchoRtt)]
    network_actions = view.actions(network_only=True)
    floor, below = noise_floor(view)
    probes = [e for e in view.of(ProbeSent, "client") if isinstance(e, ProbeSent)]
    pb = playback(view)
    segments = segments_of(view)
    viewer = viewer_figures(pb, zero, segments[0].target_s or None) if pb is not None else None
    caller = caller_figures(view, zero)
    return Metrics(
        transport=transport,
        disruption_ms=disruption,
        disruption_ongoing=bool(ongoing),
        recovery_ms=recovery,
        validation_ms=max(validations) if validations else None,
        handshakes=view.count(HandshakeCompleted, "client"),
        paths_seen=len(peers),
        ips_seen=len({host_of(p) for p in peers}),
        paths_validated=view.count(PathValidated, "server"),
        cid_changes=view.count(PeerCidChanged, "client"),
        migrations=view.count(MigrationCompleted, "client"),
        bytes=received,
        duration_s=duration_s,
        goodput_mbps=goodput,
        reconnects=view.count(ReconnectStarted, "client") or view.count(Reconnected, "client"),
        time_to_first_byte_ms=ttfb,
        echo_rtt_ms_median=_median(rtts),
        echo_rtt_ms_max=max(rtts) if rtts else None,
        network_actions=len(network_actions),
        first_action_s=(action.ts - zero) if action is not None else None,
        noise_floor_ms=floor,
        noise_floor_below=below,
        probes=len(probes),
        detection_delay_ms=probes[0].probe_after_ms if probes else None,
        startup_ms=viewer["startup_ms"] if viewer else None,
        rebuffer_events=viewer["rebuffer_events"] if viewer else None,
        rebuffer_ms=viewer["rebuffer_ms"] if viewer else None,
        max_rebuffer_ms=viewer["max_rebuffer_ms"] if viewer else None,
        viewer=viewer,
        freeze_ms=caller["freeze_ms"] if caller else None,
        caller=caller,
    )


def goodput_series(timeline: Timeline, bin_ms: int = 100, t0: float | None = None,
                   transport: str | None = None) -> list[tuple[float, float]]:
    """Client goodput over time: ``[(bin start in s from t0, Mbit/s), ...]``.

    Bytes are attributed to the bin of the progress event that reported them (not spread back over
    the interval since the previous report), so a stall shows up as empty bins rather than being
    smoothed away. Empty bins between the first and the last report are included as 0. A drop in
    the byte count (a TCP reconnect that restarted its counter) counts as a fresh start.
    """
    if bin_ms <= 0:
        raise ValueError("bin_ms must be positive")
    view = timeline.for_transport(transport) if transport else timeline
    progress = [e for e in view.of(Progress, "client") if isinstance(e, Progress)]
    if not progress:
        return []
    zero = _zero(view, t0)
    width = bin_ms / 1000.0
    bins: dict[int, int] = {}
    previous = 0
    for event in progress:
        delta = event.bytes - previous if event.bytes >= previous else event.bytes
        previous = event.bytes
        # Rounding first keeps an event stamped exactly on a bin edge in that bin despite float error
        # (T0 + 0.1 - T0 is 0.0999999...).
        index = math.floor(round((event.ts - zero) / width, 4))
        bins[index] = bins.get(index, 0) + delta
    first, last = min(bins), max(bins)
    return [(round(i * width, 6), bins.get(i, 0) * 8 / width / 1e6) for i in range(first, last + 1)]


def network_events(timeline: Timeline, t0: float | None = None) -> list[NetworkMarker]:
    """Every controller action with its time relative to ``t0``, for plot markers."""
    zero = _zero(timeline, t0)
    markers = []
    for event in timeline.actions():
        assert isinstance(event, Action)
        markers.append(NetworkMarker(t=event.ts - zero, action=event.action, target=event.target, ok=event.ok,
                                     network_changing=event.action in NETWORK_ACTIONS, detail=dict(event.detail)))
    return markers
