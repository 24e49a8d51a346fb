"""The foreign ends of a black-box run: the file served, the containers, the access-link rate.

A black-box stack cannot be told to pace its transfer, so the workload's rate becomes the rate
of the client's access links (a tbf on each client network's router, both directions, reset after
the run): the transfer lasts as long as the scenario's steps need, as a real phone's would on a
link of that speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
from pathlib import Path

from lab.control import foreign, impair
from lab.control.actions import ActionError, ActionResult, Lab
from lab.scenario.model import Impairment
from lab.scenario.schema import Scenario
from lab.scenario.stacks import (
    CERTS,
    STACK_FAILURE,
    Endpoints,
    InteropPlan,
    ServedFile,
    Stack,
    interop_plan,
    served_file_name,
    testcase_for,
)
from lab.topology.load import ROOT
from lab.topology.model import CLIENT, SERVER, Topology

CERTS_DIR = ROOT / "certs"
def image_of(stack: Stack, topology: Topology) -> str:
    """The stack's image; a stack of the lab's image runs the one compose.yaml gives the lab's services."""
    return stack.image or str(topology.extra["config"]["services"][SERVER]["image"])


def missing_images(endpoints: Endpoints, topology: Topology) -> list[str]:
    """The foreign ends' images that are not on this machine (checked before a run)."""
    sides = [s for s in (endpoints.client, endpoints.server) if not s.white_box]
    return [f"{s.name}: {image_of(s, topology)}" for s in sides if not foreign.image_present(image_of(s, topology))]


def write_served_file(run_dir: Path, size: int) -> ServedFile:
    """Random bytes in ``www/`` of the run, and their sha256 (the judge compares the download)."""
    www = run_dir / "www"
    www.mkdir(parents=True, exist_ok=True)
    name = served_file_name(size)
    digest = hashlib.sha256()
    with open(www / name, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return ServedFile(name, size, digest.hexdigest())


class ForeignEnds:
    """Sets up and tears down the foreign end(s) of one run (docker-py edge)."""

    def __init__(self, lab: Lab, topology: Topology, scenario: Scenario, endpoints: Endpoints, run_dir: Path,
                 run_id: str) -> None:
        self.lab, self.topology, self.scenario = lab, topology, scenario
        self.endpoints, self.run_dir, self.run_id = endpoints, run_dir, run_id
        self.files: tuple[ServedFile, ...] = ()
        self.client: foreign.ForeignEndpoint | None = None
        self.server: foreign.ForeignEndpoint | None = None
        self.yielded = False

    @property
    def server_url(self) -> str:
        # The lab's server advertises its preferred address to connections on its preferred port.
        preferred = self.scenario.workload.migration == "preferred" and self.endpoints.server.white_box
        port = self.topology.server_preferred_port if preferred else self.topology.server_port
        return f"https://{self.topology.server_address}:{port}"

    @property
    def testcase(self) -> str:
        return testcase_for(self.scenario.workload.migration)

    def _mounts(self, plan: InteropPlan) -> dict[Path, tuple[str, str]]:
        mounts = {}
        for relative, target in plan.mounts.items():
            path = CERTS_DIR if relative == CERTS else self.run_dir / relative
            if relative != CERTS:
                path.mkdir(parents=True, exist_ok=True)
            mounts[path.resolve()] = target
        return mounts

    def _start(self, role: str, stack: Stack, plan: InteropPlan) -> foreign.ForeignEndpoint:
        host = self.lab.ctr(CLIENT if role == "client" else SERVER)
        return foreign.start(role, stack.name, image_of(stack, self.topology), stack.command, host, plan.environment,
                             self._mounts(plan), f"{self.topology.project}-foreign-{role}-{self.run_id}",
                             self.topology.project)

    def prepare(self) -> ActionResult:
        """The served file, the server end, and the access-link rate; before the workload starts."""
        workload = self.scenario.workload
        self.files = (write_served_file(self.run_dir, int(workload.size or 0)),)
        server = self.lab.ctr(SERVER)
        port = self.topology.server_port
        if self.endpoints.server.white_box:
            self._copy_to_lab_server(self.run_dir / "www" / self.files[0].name)
        else:
            foreign.yield_main_port(server, port)
            self.yielded = True
            plan = interop_plan("server", self.server_url, self.files, workload.probe_after * 1000, self.testcase)
            self.server = self._start("server", self.endpoints.server, plan)
            if not foreign.wait_bound(server, port, self.server):
                code = self.server.exit_code(timeout=1)
                raise ActionError(f"server stack {self.endpoints.server.name} did not listen on UDP {port}"
                                  + (f" (exit code {code})" if code is not None else ""))
        rates = {}
        used = set(self.scenario.initial.networks) | {s.network for s in self.scenario.plan() if s.network}
        if workload.rate:
            for network in sorted(used & set(self.topology.gateways)):
                if network not in self.scenario.initial.impair:
                    impair.apply(self.lab, network, Impairment(rate=int(workload.rate * 8)))
                    rates[network] = int(workload.rate * 8)
        return ActionResult("foreign", self.endpoints.label, {
            "files": [f.to_dict() for f in self.files], "access_rate_bps": rates,
            "server": self.endpoints.server.to_dict(), "client": self.endpoints.client.to_dict()})

    def _copy_to_lab_server(self, path: Path) -> None:
        server = self.lab.ctr(SERVER)
        server.exec_run(["mkdir", "-p", "/www"])
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(path, arcname=path.name)
        if not server.put_archive("/www", buffer.getvalue()):
            raise ActionError(f"cannot copy {path.name} into the lab server's /www")

    def start_client(self) -> foreign.ForeignEndpoint:
        plan = interop_plan("client", self.server_url, self.files, self.scenario.workload.probe_after * 1000,
                            self.testcase)
        self.client = self._start("client", self.endpoints.client, plan)
        return self.client

    def client_exit(self) -> int | None:
        return None if self.client is None else self.client.exit_code(timeout=5)

    def server_running(self) -> int | None:
        """1 when the foreign server still runs as the client finishes (as a server should), else 0."""
        return None if self.server is None else int(self.server.running())

    def server_gone(self) -> str | None:
        """A foreign server that exited mid-run, in one line (a stack failure: see STACK_FAILURE)."""
        if self.server is None or self.server.running():
            return None
        return f"{STACK_FAILURE} {self.endpoints.server.name}: the server exited mid-run (code " \
               f"{self.server.exit_code(timeout=1)})"

    def kill_client(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.container.kill()

    def teardown(self) -> dict[str, int | None]:
        """Stop and remove the foreign containers, give the lab's server its port back."""
        codes: dict[str, int | None] = {}
        if self.server is not None:
            codes["server"] = self.server.stop()
        for end in (self.client, self.server):
            if end is not None:
                self._save_log(end)
                end.remove()
        if self.yielded:
            if not foreign.reclaim_main_port(self.lab.ctr(SERVER), self.topology.server_port, timeout=5):
                raise ActionError(f"the lab's server could not bind UDP {self.topology.server_port} again")
            self.yielded = False
        return codes

    def _save_log(self, end: foreign.ForeignEndpoint) -> None:
        with contextlib.suppress(Exception):
            logs = self.run_dir / "logs"
            logs.mkdir(exist_ok=True)
            (logs / f"foreign-{end.role}.log").write_bytes(end.container.logs(stdout=True, stderr=True))
