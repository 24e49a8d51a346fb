"""The qh3 endpoint (stacks/qh3/endpoint.py) in its image, on loopback, against itself and the lab's aioquic.

Every test runs real containers with no network but loopback (`--network none`): the server in one
container, the client in a second one that shares its network namespace (`--network container:`).
Nothing here touches the lab's Compose project. The image is built (make qh3-image) when it is
missing or its endpoint.py differs from the checkout's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.certs import ensure_certificates

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QH3_IMAGE = os.environ.get("QH3_IMAGE", "quic-migration-lab-qh3:latest")
LAB_IMAGE = os.environ.get("LAB_IMAGE", "quic-migration-lab:latest")
ENDPOINT = ROOT / "stacks" / "qh3" / "endpoint.py"
LAB_INTEROP = ["python", "-m", "lab.endpoints.interop"]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def image_endpoint(image: str) -> str | None:
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", image, "/opt/qh3/endpoint.py",
                    check=False)
    return result.stdout if result.returncode == 0 else None


@pytest.fixture(scope="session")
def qh3_image() -> str:
    """The qh3 image, (re)built when missing or older than stacks/qh3/endpoint.py."""
    if image_endpoint(QH3_IMAGE) != ENDPOINT.read_text():
        included = "images/qh3/make.mk" in (ROOT / "Makefile").read_text()
        command = ["make", "qh3-image"] if included else ["make", "-f", "Makefile", "-f", "images/qh3/make.mk",
                                                            "qh3-image"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
        assert image_endpoint(QH3_IMAGE) == ENDPOINT.read_text(), "the rebuilt image has another endpoint.py"
    return QH3_IMAGE


@pytest.fixture(scope="session")
def lab_image() -> str:
    if docker("image", "inspect", LAB_IMAGE, check=False).returncode != 0:
        result = subprocess.run(["make", "images"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, f"make images:\n{result.stdout}\n{result.stderr}"
    return LAB_IMAGE


@dataclass
class Box:
    """One loopback test: certificates, files to serve, downloads and logs under a temporary directory."""

    base: Path
    files: dict[str, str]  # name -> sha256
    name: str

    @property
    def certs(self) -> Path:
        return self.base / "certs"

    @property
    def www(self) -> Path:
        return self.base / "www"

    @property
    def downloads(self) -> Path:
        return self.base / "downloads"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    def urls(self, names=None, port: int = 443) -> str:
        return " ".join(f"https://127.0.0.1:{port}/{name}" for name in (names or self.files))

    def downloaded(self) -> dict[str, str]:
        return {path.name: sha256(path) for path in sorted(self.downloads.iterdir())}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_box(tmp_path: Path, sizes: dict[str, int]) -> Box:
    base = tmp_path / "box"
    (base / "www").mkdir(parents=True)
    (base / "downloads").mkdir()
    (base / "logs").mkdir()
    ensure_certificates(base / "certs")
    files = {}
    for name, size in sizes.items():
        path = base / "www" / name
        path.write_bytes(os.urandom(size))
        files[name] = sha256(path)
    return Box(base=base, files=files, name=f"qh3-test-{uuid.uuid4().hex[:10]}")


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


class Server:
    """A server container on loopback only; stop() sends SIGTERM and returns its log."""

    def __init__(self, box: Box, image: str, env: dict[str, str], command: list[str] | None = None) -> None:
        self.name = f"{box.name}-server"
        args = ["run", "-d", "--name", self.name, "--network", "none",
                "-v", f"{box.certs}:/certs:ro", "-v", f"{box.www}:/www:ro", "-v", f"{box.logs}:/logs",
                *env_args({"ROLE": "server", **env})]
        if command:
            args += ["--entrypoint", command[0], image, *command[1:]]
        else:
            args.append(image)
        docker(*args)
        self.wait_listening()

    def wait_listening(self, port: int = 443, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sockets = docker("exec", self.name, "ss", "-Huln", check=False).stdout
            if f":{port} " in sockets:
                return
            state = docker("inspect", "-f", "{{.State.Running}}", self.name, check=False).stdout.strip()
            if state == "false":
                break
            time.sleep(0.2)
        raise AssertionError(f"{self.name} is not listening on UDP {port}:\n{self.logs()}")

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> tuple[int, str]:
        docker("stop", "-t", "10", self.name, timeout=30)
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())
        return code, self.logs()

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


def client_args(box: Box, server: Server, image: str, env: dict[str, str], command: list[str] | None = None):
    args = ["run", "--rm", "--name", f"{box.name}-client", "--network", f"container:{server.name}",
            "-v", f"{box.downloads}:/downloads", "-v", f"{box.logs}:/logs", *env_args({"ROLE": "client", **env})]
    if command:
        return [*args, "--entrypoint", command[0], image, *command[1:]]
    return [*args, image]


def run_client(box: Box, server: Server, image: str, env: dict[str, str], command: list[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return docker(*client_args(box, server, image, env, command), timeout=timeout, check=False)
    finally:
        docker("rm", "-f", f"{box.name}-client", check=False)


def keylog_labels(path: Path) -> set[str]:
    return {line.split(" ", 1)[0] for line in path.read_text().splitlines() if line.strip()}


def qlogs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.qlog")) if directory.is_dir() else []


# --- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["client", "server"])
def test_unsupported_testcase_exits_127(qh3_image, role):
    probe = f"compliance-{uuid.uuid4().hex[:8]}"  # what the runner's compliance check sends
    result = docker("run", "--rm", "--network", "none", "-e", f"ROLE={role}", "-e", f"TESTCASE={probe}", qh3_image,
                    check=False, timeout=60)
    assert result.returncode == 127, result.stderr
    assert "unsupported test case" in result.stderr


def test_server_connectionmigration_is_unsupported(qh3_image):
    """qh3 cannot advertise a preferred_address, so the server declines connectionmigration."""
    result = docker("run", "--rm", "--network", "none", "-e", "ROLE=server", "-e", "TESTCASE=connectionmigration",
                    qh3_image, check=False, timeout=60)
    assert result.returncode == 127, result.stderr


def test_bad_role_exits_1(qh3_image):
    result = docker("run", "--rm", "--network", "none", "-e", "ROLE=router", "-e", "TESTCASE=transfer", qh3_image,
                    check=False, timeout=60)
    assert result.returncode == 1, result.stderr


# --- qh3 <-> qh3 -----------------------------------------------------------------------------

SIZES = {
    "handshake": {"small.bin": 3_000},
    "transfer": {"a.bin": 2_000_000, "b.bin": 700_001, "c.bin": 10, "empty.bin": 0},
    "http3": {"a.bin": 2_000_000, "b.bin": 65_537, "c.bin": 1},
}


@pytest.mark.parametrize("testcase", ["handshake", "transfer", "http3"])
def test_qh3_client_and_server(qh3_image, tmp_path, testcase):
    box = make_box(tmp_path, SIZES[testcase])
    server = None
    try:
        server = Server(box, qh3_image, {"TESTCASE": testcase, "SSLKEYLOGFILE": "/logs/server/keys.log",
                                         "QLOGDIR": "/logs/server/qlog"})
        result = run_client(box, server, qh3_image, {"TESTCASE": testcase, "REQUESTS": box.urls(),
                                                     "SSLKEYLOGFILE": "/logs/client/keys.log",
                                                     "QLOGDIR": "/logs/client/qlog"})
        assert result.returncode == 0, result.stderr
        code, server_log = server.stop()
    finally:
        if server is not None:
            server.remove()
    assert code == 0, server_log
    assert box.downloaded() == box.files
    alpn = "h3" if testcase == "http3" else "hq-interop"
    assert f"alpn {alpn}" in result.stderr and f"alpn {alpn}" in server_log
    for name in box.files:
        assert f"saved /downloads/{name} " in result.stderr
    assert "connection closed" in result.stderr
    for side in ("client", "server"):
        labels = keylog_labels(box.logs / side / "keys.log")
        assert {"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "SERVER_HANDSHAKE_TRAFFIC_SECRET"} <= labels
        traces = qlogs(box.logs / side / "qlog")
        assert len(traces) == 1, f"{side}: {traces}"
        text = traces[0].read_text()
        assert '"qlog_version"' in text and "packet_received" in text


def test_keylog_and_qlog_only_when_asked(qh3_image, tmp_path):
    box = make_box(tmp_path, {"x.bin": 50_000})
    server = None
    try:
        server = Server(box, qh3_image, {"TESTCASE": "transfer"})
        result = run_client(box, server, qh3_image, {"TESTCASE": "transfer", "REQUESTS": box.urls()})
    finally:
        if server is not None:
            server.remove()
    assert result.returncode == 0, result.stderr
    assert box.downloaded() == box.files
    assert list(box.logs.iterdir()) == []


def test_missing_file_fails_the_client(qh3_image, tmp_path):
    box = make_box(tmp_path, {"here.bin": 1_000})
    server = None
    try:
        server = Server(box, qh3_image, {"TESTCASE": "transfer"})
        result = run_client(box, server, qh3_image, {"TESTCASE": "transfer",
                                                     "REQUESTS": box.urls(["here.bin", "missing.bin"])})
    finally:
        if server is not None:
            server.remove()
    assert result.returncode == 1, result.stderr
    assert "failed https://127.0.0.1:443/missing.bin" in result.stderr
    assert box.downloaded() == {"here.bin": box.files["here.bin"]}  # no partial file for the missing one


@pytest.mark.parametrize("probe_after_ms", [200, 0])
def test_silent_client_probes(qh3_image, tmp_path, probe_after_ms):
    """The server freezes for 1.2 s mid-download: the client PINGs every 200 ms of silence (0: never)."""
    box = make_box(tmp_path, {"big.bin": 60_000_000})
    server = None
    try:
        server = Server(box, qh3_image, {"TESTCASE": "transfer"})
        outcome = {}

        def client():
            outcome["result"] = run_client(box, server, qh3_image, {"TESTCASE": "transfer", "REQUESTS": box.urls(),
                                                                    "PROBE_AFTER_MS": str(probe_after_ms),
                                                                    "QLOGDIR": "/logs/client/qlog"})

        thread = threading.Thread(target=client)
        thread.start()
        deadline = time.monotonic() + 30
        while "request /big.bin" not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        docker("pause", server.name)
        time.sleep(1.2)
        docker("unpause", server.name)
        thread.join(timeout=120)
        result = outcome["result"]
    finally:
        if server is not None:
            server.remove()
    assert result.returncode == 0, result.stderr
    assert box.downloaded() == box.files
    probes = result.stderr.count("probe sent")
    gap, sent = longest_silence(qlogs(box.logs / "client" / "qlog")[0])
    assert gap >= 1.0, f"the client heard the frozen server ({gap:.3f} s of silence at most)"
    print(f"PROBE_AFTER_MS={probe_after_ms}: {gap:.3f} s of silence, {probes} probe(s), {sent} datagram(s) sent in it")
    if probe_after_ms:
        assert 3 <= probes <= 8, result.stderr  # ~1.2 s / 0.2 s, give or take the pause's edges
        assert sent >= probes, "a probe was logged but no datagram left"
    else:
        assert probes == 0, result.stderr


def longest_silence(qlog: Path) -> tuple[float, int]:
    """The longest time between two received datagrams (s), and how many datagrams were sent in it."""
    events = json.loads(qlog.read_text())["traces"][0]["events"]
    received = [e["time"] for e in events if e["name"] == "transport:datagrams_received"]
    start, end = max(zip(received, received[1:], strict=False), key=lambda pair: pair[1] - pair[0])
    sent = sum(1 for e in events if e["name"] == "transport:datagrams_sent" and start < e["time"] < end)
    return (end - start) / 1000, sent


# --- qh3 <-> the lab's aioquic ---------------------------------------------------------------


@pytest.mark.parametrize("testcase", ["transfer", "http3"])
def test_qh3_client_against_lab_server(qh3_image, lab_image, tmp_path, testcase):
    box = make_box(tmp_path, {"a.bin": 3_000_000, "b.bin": 123_457})
    server = None
    try:
        server = Server(box, lab_image, {"TESTCASE": testcase}, command=LAB_INTEROP)
        started = time.monotonic()
        result = run_client(box, server, qh3_image, {"TESTCASE": testcase, "REQUESTS": box.urls(),
                                                     "SSLKEYLOGFILE": "/logs/client/keys.log"})
        elapsed = time.monotonic() - started
        server_log = server.logs()
    finally:
        if server is not None:
            server.remove()
    assert result.returncode == 0, f"{result.stderr}\n--- lab server ---\n{server_log}"
    assert box.downloaded() == box.files
    assert '"type":"handshake_completed"' in server_log.replace(" ", "")
    assert "CLIENT_TRAFFIC_SECRET_0" in keylog_labels(box.logs / "client" / "keys.log")
    print(f"qh3 client <- aioquic server, {testcase}: {elapsed:.2f} s (container start included)")


@pytest.mark.parametrize("testcase", ["transfer", "http3"])
def test_lab_client_against_qh3_server(qh3_image, lab_image, tmp_path, testcase):
    box = make_box(tmp_path, {"a.bin": 3_000_000, "b.bin": 123_457})
    server = None
    try:
        server = Server(box, qh3_image, {"TESTCASE": testcase, "SSLKEYLOGFILE": "/logs/server/keys.log"})
        started = time.monotonic()
        result = run_client(box, server, lab_image, {"TESTCASE": testcase, "REQUESTS": box.urls()},
                            command=LAB_INTEROP)
        elapsed = time.monotonic() - started
        code, server_log = server.stop()
    finally:
        if server is not None:
            server.remove()
    assert result.returncode == 0, f"{result.stderr}\n--- qh3 server ---\n{server_log}"
    assert code == 0, server_log
    assert box.downloaded() == box.files
    assert "connected: peer" in server_log and "sent /a.bin" in server_log
    assert "CLIENT_TRAFFIC_SECRET_0" in keylog_labels(box.logs / "server" / "keys.log")
    print(f"aioquic client <- qh3 server, {testcase}: {elapsed:.2f} s (container start included)")


# --- a port rebinding on loopback, judged from a decrypted capture ----------------------------

RELAY = '''
"""client -> 127.0.0.1:15444 -> 127.0.0.1:443; once the server has sent REBIND_AFTER bytes (the
handshake is long over and the download under way, however loaded the machine), the relay forwards
from a new source port (the old one closed): a NAT rebinding."""
import asyncio, socket, sys, time
rebind_after = int(sys.argv[1])
async def main():
    loop = asyncio.get_running_loop()
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 15444))
    front.setblocking(False)
    state = {"client": None, "back": None, "down": 0}
    def back_socket():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        def readable():
            try:
                data = sock.recv(65535)
            except OSError:
                return
            if state["back"] is sock and state["client"]:
                state["down"] += len(data)
                front.sendto(data, state["client"])
        loop.add_reader(sock.fileno(), readable)
        return sock
    state["back"] = back_socket()
    rebound = False
    def front_readable():
        nonlocal rebound
        while True:
            try:
                data, addr = front.recvfrom(65535)
            except BlockingIOError:
                return
            state["client"] = addr
            if not rebound and state["down"] >= rebind_after:
                old = state["back"]
                loop.remove_reader(old.fileno())
                old.close()
                state["back"] = back_socket()
                rebound = True
                print("rebound", state["back"].getsockname()[1], flush=True)
            state["back"].sendto(data, ("127.0.0.1", 443))
    loop.add_reader(front.fileno(), front_readable)
    await asyncio.sleep(3600)
asyncio.run(main())
'''


def test_qh3_server_challenges_a_rebound_client(qh3_image, lab_image, tmp_path):
    """The runner's rebind-port rule: the server's first packet to a new client port carries PATH_CHALLENGE.

    Server, relay and client in one qh3 container (tcpdump from the base image captures lo);
    the lab image's tshark decrypts the capture with the client's key log.
    """
    box = make_box(tmp_path, {"r.bin": 4_000_000})
    (box.logs / "relay.py").write_text(RELAY)
    script = """
tcpdump -i lo -B 32768 -U -w /logs/lo.pcap udp port 443 2>/logs/tcpdump.log & TP=$!
ROLE=server TESTCASE=transfer python /opt/qh3/endpoint.py 2>/logs/server.log & SP=$!
python /logs/relay.py 500000 >/logs/relay.log & RP=$!
for _ in $(seq 100); do ss -Huln | grep -q ':15444 ' && ss -Huln | grep -q ':443 ' && break; sleep 0.1; done
sleep 0.5
ROLE=client TESTCASE=transfer REQUESTS=https://127.0.0.1:15444/r.bin SSLKEYLOGFILE=/logs/keys.log \
  python /opt/qh3/endpoint.py 2>/logs/client.log; rc=$?
sleep 0.3; kill $RP $SP; sleep 0.3; kill $TP; wait; exit $rc
"""
    name = f"{box.name}-rebind"
    try:
        result = docker("run", "--name", name, "--network", "none", "--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN",
                        "-v", f"{box.certs}:/certs:ro", "-v", f"{box.www}:/www:ro", "-v", f"{box.logs}:/logs",
                        "-v", f"{box.downloads}:/downloads", "--entrypoint", "sh", qh3_image, "-c", script,
                        check=False, timeout=120)
    finally:
        docker("rm", "-f", name, check=False)
    client_log = (box.logs / "client.log").read_text()
    assert result.returncode == 0, client_log + result.stderr
    assert box.downloaded() == box.files
    assert "rebound" in (box.logs / "relay.log").read_text()

    fields = ["frame.number", "udp.srcport", "udp.dstport", "quic.frame_type", "quic.path_challenge.data",
              "quic.path_response.data"]
    decode = ("editcap --inject-secrets tls,/logs/keys.log /logs/lo.pcap /logs/lo.pcapng && "
              "tshark -r /logs/lo.pcapng -d udp.port==443,quic -T fields -E separator=/t "
              + " ".join(f"-e {f}" for f in fields))
    rows = docker("run", "--rm", "--network", "none", "-v", f"{box.logs}:/logs", "--entrypoint", "sh", lab_image,
                  "-c", decode, timeout=120).stdout.splitlines()
    first_to_port: dict[str, list[str]] = {}
    challenges, responses = set(), set()
    for row in rows:
        _number, src, dst, types, challenge, response = (row.split("\t") + [""] * 6)[:6]
        if src == "443":
            first_to_port.setdefault(dst, types.split(","))
        challenges |= {c for c in challenge.split(",") if c} if src == "443" else set()
        responses |= {r for r in response.split(",") if r} if dst == "443" else set()
    dropped = (box.logs / "tcpdump.log").read_text()
    assert "\n0 packets dropped by kernel" in dropped, f"the capture is incomplete: {dropped.strip()}"
    assert len(first_to_port) == 2, f"expected two client ports, saw {sorted(first_to_port)}"
    new_port_first = list(first_to_port.values())[1]
    assert "26" in new_port_first, f"first packet on the new path carries frames {new_port_first}, no PATH_CHALLENGE"
    assert challenges and challenges <= responses, f"unanswered challenges: {challenges - responses}"
