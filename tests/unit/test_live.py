"""The live views render a recorded run: every action shown, noisy events throttled, status from events."""

from __future__ import annotations

import io
import json
from pathlib import Path

from lab import events as ev
from lab.observe.live import JsonView, PlainView, Status
from lab.observe.timeline import read_jsonl

RECORDED = Path(__file__).resolve().parents[1] / "data" / "timelines" / "lab" / "wifi-to-cellular.jsonl"


def test_plain_view_shows_every_action_and_throttles_progress():
    timeline = read_jsonl(RECORDED)
    out = io.StringIO()
    view = PlainView(out)
    view.start("wifi-to-cellular", "teaching text")
    for event in timeline:
        view.event(event, event.role)
    text = out.getvalue()
    for action in timeline.of(ev.Action):
        assert f"{action.action} {action.target}" in text
    shown = text.count(" MB via ")
    assert 0 < shown < len(timeline.of(ev.Progress)) / 3  # at most one a second per source
    assert "validated" in text and "sha256 verified" in text


def test_status_is_built_from_events_only():
    timeline = read_jsonl(RECORDED)
    status = Status()
    for event in timeline:
        status.update(event)
    done = timeline.first(ev.TransferComplete, "client")
    last_move = timeline.last(ev.ActivePathChanged, "server")
    assert status.bytes == done.bytes == status.total
    assert status.server_sees == last_move.new_peer
    assert status.validations == timeline.count(ev.PathValidated, "server")
    assert status.handshakes == 1


def test_json_view_is_one_event_per_line():
    timeline = read_jsonl(RECORDED)
    out = io.StringIO()
    view = JsonView(out)
    for event in timeline:
        view.event(event, event.role)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(timeline)
    assert all(ev.from_dict({k: v for k, v in json.loads(line).items() if k != "source"}) for line in lines)


def test_the_rich_view_still_shows_notes_after_its_live_display_stopped():
    from rich.console import Console

    from lab.observe.live import RichView

    out = io.StringIO()
    view = RichView(Console(file=out, force_terminal=False, width=100))
    view.start("baseline", "text")
    view.stop()
    view.note("restoring the lab first, it takes a few seconds")
    assert "-- restoring the lab first, it takes a few seconds" in out.getvalue()
