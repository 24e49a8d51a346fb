"""Edge: run Wireshark's tools (tshark, editcap, mergecap) from the lab image, never the host's.

Every machine then judges captures with the same tshark (4.0.17 of Debian bookworm, which
decrypts migrated paths; see docs/references.md), and the host needs no Wireshark at all. Each
call is a short-lived container of the lab image with no network and the files' common directory
mounted; it runs as the calling user so the files it writes belong to them.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

MOUNT = PurePosixPath("/data")
OUT = PurePosixPath("/out")
DEFAULT_IMAGE = "quic-migration-lab:latest"
# Set by a background judge (lab.verify.background): the tools run in the SCHED_IDLE class with the
# smallest CPU weight, so that a run playing meanwhile keeps its CPU.
IDLE_ENV = "LAB_JUDGE_IDLE"
IDLE_CPU_SHARES = 2  # the smallest cpu.shares (cgroup v1); cgroup v2's weight 1


class TsharkError(RuntimeError):
    """A Wireshark tool ran but failed, or could not be started (no image, no Docker)."""


def lab_image() -> str:
    """The image that holds the judging tshark: the lab's own (``LAB_IMAGE``, as in compose.yaml)."""
    return os.environ.get("LAB_IMAGE") or DEFAULT_IMAGE


class ImageTools:
    """Runs a shell pipeline of Wireshark tools in the lab image over files under one directory."""

    def __init__(self, image: str | None = None) -> None:
        self.image = image or lab_image()
        self._client = None

    def _docker(self):
        if self._client is None:
            import docker
            import docker.errors

            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise TsharkError(f"cannot reach the Docker daemon to run the lab image's tshark: {exc}") from None
        return self._client

    def run(self, workdir: Path, script: str, writable: bool = True) -> str:
        """Run ``script`` (sh) with ``workdir`` mounted at /data as the working directory; its stdout.

        Stdout goes to a file in a mounted scratch directory, not through the container's log:
        a log driver may rotate away the start of tshark's JSON (tens of MB for one run).
        """
        import docker.errors

        client = self._docker()
        idle = os.environ.get(IDLE_ENV) == "1"
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise TsharkError(f"the lab image {self.image} is missing (it holds the judging tshark): "
                              "run `make images`") from None
        with tempfile.TemporaryDirectory(prefix="lab-tshark-") as scratch:
            os.chmod(scratch, 0o777)
            command = ["sh", "-c", f"{{ {script}\n}} > {OUT}/stdout"]
            container = client.containers.create(
                self.image, ["chrt", "-i", "0", *command] if idle else command, working_dir=str(MOUNT),
                network_mode="none", user=f"{os.getuid()}:{os.getgid()}", environment={"HOME": "/tmp"},
                volumes={str(Path(workdir).resolve()): {"bind": str(MOUNT), "mode": "rw" if writable else "ro"},
                         scratch: {"bind": str(OUT), "mode": "rw"}},
                labels={"org.quic-migration-lab": "tshark"}, **({"cpu_shares": IDLE_CPU_SHARES} if idle else {}),
            )
            try:
                container.start()
                status = container.wait()
                err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
            finally:
                container.remove(force=True)
            stdout = Path(scratch) / "stdout"
            out = stdout.read_text(encoding="utf-8", errors="replace") if stdout.exists() else ""
        if status.get("StatusCode", 1) != 0:
            err = "\n".join(line for line in err.splitlines() if "Running as user" not in line).strip()
            first = script.split(" ", 1)[0]
            raise TsharkError(f"{first} failed in {self.image} (rc={status.get('StatusCode')}): {err or 'no output'}")
        return out


def inside(path: Path, workdir: Path) -> str:
    """``path`` as the container sees it (relative to the mount), quoted for sh."""
    return shlex.quote(str(Path(path).resolve().relative_to(Path(workdir).resolve())))


def common_dir(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))
