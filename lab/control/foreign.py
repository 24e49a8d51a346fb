"""Foreign endpoints: a black-box stack's container inside the network namespace of a lab container.

The foreign program shares the interfaces, routes and NAT of the lab's client (or server)
container (``network_mode: container:<id>``), so every move the controller makes applies to it
and it needs none of the lab's tools. It gets no capability but binding port 443, no network of
its own, and only the mounts of the interop contract (/certs, /www, /downloads) plus /logs for its
key log and qlog. Every such container carries ``FOREIGN_LABEL`` so a reset removes leftovers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker.models.containers import Container

from lab.control.base import ActionError
from lab.control.docker_api import client

FOREIGN_LABEL = "org.quic-migration-lab.foreign"
LAB_LABEL = "org.quic-migration-lab.lab"
MAIN_PORT_CHECK = "ss -Hlun 'sport = :{port}' | grep -q ."


@dataclass
class ForeignEndpoint:
    """One foreign container of a run (docker-py edge)."""

    role: str
    container: Container

    def exit_code(self, timeout: float = 10.0) -> int | None:
        try:
            return int(self.container.wait(timeout=timeout)["StatusCode"])
        except Exception:  # still running after the timeout, or gone
            return None

    def running(self) -> bool:
        with contextlib.suppress(docker.errors.NotFound):
            self.container.reload()
            return self.container.status == "running"
        return False

    def stop(self) -> int | None:
        with contextlib.suppress(docker.errors.APIError):
            self.container.stop(timeout=2)
        return self.exit_code(timeout=5)

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.container.remove(force=True)


def image_present(image: str) -> bool:
    try:
        client().images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def start(role: str, stack: str, image: str, command: tuple[str, ...], host: Container,
          environment: Mapping[str, str], mounts: Mapping[Path, tuple[str, str]], name: str,
          project: str) -> ForeignEndpoint:
    """Start ``stack`` (its ``image``, ``command`` or the image's entry point) for ``role`` in the
    network namespace of ``host``; ``mounts``: host path -> (container path, "ro"|"rw")."""
    volumes = {str(path): {"bind": target, "mode": mode} for path, (target, mode) in mounts.items()}
    try:
        container = client().containers.run(
            image, list(command) or None, name=name, detach=True, network_mode=f"container:{host.id}",
            environment=dict(environment), volumes=volumes, cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"],
            security_opt=["no-new-privileges"], labels={FOREIGN_LABEL: role, LAB_LABEL: project},
            init=True)
    except docker.errors.ImageNotFound:
        raise ActionError(f"{role} stack {stack}: image {image} is missing") from None
    except docker.errors.APIError as exc:
        raise ActionError(f"{role} stack {stack}: cannot start {image}: {exc.explanation or exc}") from None
    return ForeignEndpoint(role, container)


def remove_all(project: str) -> int:
    """Remove every foreign container of the lab (a reset after an interrupted run)."""
    found = client().containers.list(all=True, filters={"label": [FOREIGN_LABEL, f"{LAB_LABEL}={project}"]})
    for container in found:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    return len(found)


def port_bound(server: Container, port: int) -> bool:
    code, _ = server.exec_run(["sh", "-c", MAIN_PORT_CHECK.format(port=port)])
    return code == 0


def yield_main_port(server: Container, port: int, timeout: float = 5.0) -> None:
    """Ask the lab's server to close its main UDP port (SIGUSR2) and wait until it is free."""
    server.kill(signal="SIGUSR2")
    deadline = time.monotonic() + timeout
    while port_bound(server, port):
        if time.monotonic() > deadline:
            raise ActionError(f"the lab's server did not yield UDP port {port} within {timeout:g} s")
        time.sleep(0.05)


def reclaim_main_port(server: Container, port: int, timeout: float = 5.0) -> bool:
    """Ask the lab's server to bind its main port again (SIGHUP) until it holds it; idempotent."""
    deadline = time.monotonic() + timeout
    while True:
        server.kill(signal="SIGHUP")
        time.sleep(0.1)
        if port_bound(server, port):
            return True
        if time.monotonic() > deadline:
            return False


def wait_bound(server: Container, port: int, endpoint: ForeignEndpoint, timeout: float = 10.0) -> bool:
    """Wait until something in the server's namespace listens on ``port``; False if the endpoint exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_bound(server, port):
            return True
        if not endpoint.running():
            return False
        time.sleep(0.1)
    return False
