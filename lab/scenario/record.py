"""The layout of a run directory, written by the runner and read back by the judge (pure constants).

A run directory holds everything needed to judge the run again anywhere: the scenario and the
topology it ran with, the observations (events, qlog, captures) and the run's own record.
"""

from __future__ import annotations

RECORD = "run.json"  # run id, scenario name, start time, whether captures were taken
TOPOLOGY_COPY = "topology.json"  # `docker compose config` as the run saw it
EVENTS = "events.jsonl"  # the merged timeline
CAPTURES = "captures"
SERVER_CAPTURE = "captures/server-side.pcapng"  # the routers' WAN sides merged: the server's view
KEYLOG = "client/keys-quic.log"
SERVER_KEYLOG = "server/keys.log"  # a black-box server's (lab.scenario.stacks)
DOWNLOADS = "client/downloads"  # a black-box client's /downloads
WWW = "www"  # the files a black-box run served
TIMEOUT_ERROR = "timeout"  # how the run_end error of a run that outlived its scenario's timeout begins
RUN_END = "run_end"  # the controller's last event: error, exit codes, steps played, duration


def scenario_copy(name: str) -> str:
    """The file name of the scenario's copy (a scenario's name is its file's name)."""
    return f"{name}.yaml"
