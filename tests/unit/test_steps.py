"""lab/scenario/steps.py: one spec per action, and every reader of actions agrees with it."""

from __future__ import annotations

from typing import Any

import pytest

from lab.control.base import ActionResult
from lab.observe.timeline import NETWORK_ACTIONS
from lab.scenario.model import Impairment, Step
from lab.scenario.runner import ScenarioRunner
from lab.scenario.stacks import endpoints
from lab.scenario.steps import ACTIONS
from lab.verify.judge import MIGRATING_ACTIONS


class FakeLab:
    """Records the Lab method each step calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str):
        def call(*args: Any) -> ActionResult:
            self.calls.append((name, *args))
            return ActionResult(name, str(args[0]) if args else "")
        return call


STEPS = {
    "connect": (Step("connect", network="office", address=7), ("connect", "office", 7)),
    "disconnect": (Step("disconnect", network="home"), ("disconnect", "home")),
    "route": (Step("route", network="cellular"), ("route", "cellular")),
    "migrate": (Step("migrate", network="cellular"), ("migrate", "cellular")),
    "rebind": (Step("rebind", router="carrier-nat"), ("rebind", "carrier-nat")),
    "renumber": (Step("renumber", network="home", address="10.0.0.9"), ("renumber", "home", "10.0.0.9")),
    "temporary_address": (Step("temporary_address", network="home"), ("temporary_address", "home")),
    "blackhole": (Step("blackhole", network="internet", state=True), ("blackhole", "internet", True)),
    "attack": (Step("attack", network="home", kind="spoof", state=False), ("attack", "home", "spoof", False)),
    "nat": (Step("nat", router="carrier-nat", ports="preserve", udp_timeout=5.0),
            ("nat", "carrier-nat", None, "preserve", 5.0)),
    "idle": (Step("idle", duration=8.0, keepalive=2.0), ("idle", 8.0, 2.0)),
}


def runner_with(lab: FakeLab) -> ScenarioRunner:
    runner = ScenarioRunner.__new__(ScenarioRunner)  # no topology, no Docker: only _apply is used
    runner.lab = lab  # type: ignore[assignment]
    return runner


def test_the_table_lists_every_action_once_in_the_order_errors_name_them() -> None:
    assert list(ACTIONS) == ["connect", "disconnect", "route", "migrate", "rebind", "renumber", "temporary_address",
                             "blackhole", "impair", "attack", "nat", "idle", "farm_rebind", "wait", "flap"]
    for name, spec in ACTIONS.items():
        assert spec.name == name and spec.does and spec.fields
        assert set(spec.one_of) <= set(spec.field_names)


@pytest.mark.parametrize("action", sorted(STEPS))
def test_the_runner_applies_each_lab_action_through_its_spec(action: str) -> None:
    step, call = STEPS[action]
    lab = FakeLab()
    runner_with(lab)._apply(step)
    assert lab.calls == [call]


def test_wait_touches_nothing_and_impair_goes_to_the_impairment_module(monkeypatch) -> None:
    lab = FakeLab()
    assert runner_with(lab)._apply(Step("wait", duration=1.5)) == ActionResult("wait", "1.5s") and not lab.calls
    seen = []
    monkeypatch.setattr("lab.control.impair.apply_step", lambda lab, step: seen.append(step) or ActionResult("i", ""))
    step = Step("impair", network="cellular", impairment=Impairment(delay=0.04))
    runner_with(lab)._apply(step)
    assert seen == [step]


def test_flap_never_reaches_the_runner() -> None:
    from lab.control.base import ActionError

    assert ACTIONS["flap"].apply is None
    with pytest.raises(ActionError, match="'flap' is not supported"):
        runner_with(FakeLab())._apply(Step("flap"))


def test_the_other_lists_of_actions_agree_with_the_table() -> None:
    """lab/observe sits below the scenario package, so it keeps its own set; so, today, does the judge."""
    assert NETWORK_ACTIONS == {name for name, spec in ACTIONS.items() if spec.changes_network}
    assert MIGRATING_ACTIONS == {name for name, spec in ACTIONS.items() if spec.moves_client}


def test_a_black_box_client_is_not_commanded_and_the_skip_is_recorded() -> None:
    calls: list = []

    class Lab:
        def migrate(self, network):  # would reach the lab's own client's control socket
            calls.append(network)

    runner = runner_with(Lab())  # type: ignore[arg-type]
    runner.foreign = object()  # type: ignore[assignment]
    runner.endpoints = endpoints(client="qh3")
    step = Step(action="migrate", network="office")
    result = runner._apply(step)
    assert calls == [] and "black box" in result.detail["skipped"]


def test_a_step_waiting_for_a_black_boxs_event_runs_after_the_previous_one() -> None:
    from lab.scenario.model import Trigger

    runner = runner_with(object())  # type: ignore[arg-type]
    waiting = Step(action="disconnect", network="home", trigger=Trigger("after", event="migration_completed",
                                                                        role="client"))
    runner.foreign, runner.endpoints = None, endpoints()
    assert runner._black_box_step(waiting) is waiting  # the lab's own client emits it
    runner.foreign = object()  # type: ignore[assignment]
    runner.endpoints = endpoints(client="qh3")
    replaced = runner._black_box_step(waiting)
    assert replaced.trigger.kind == "after_step" and "trigger_replaced" in (replaced.origin or "")
    on_server = Step(action="disconnect", network="home", trigger=Trigger("after", event="path_validated",
                                                                          role="server"))
    assert runner._black_box_step(on_server) is on_server  # the lab's server still emits its events
