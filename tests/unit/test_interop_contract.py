"""The quic-interop-runner endpoint contract: pure command construction, exit 127, and real loopback runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.certs import ensure_certificates
from lab.endpoints.interop import UNSUPPORTED, client_plan, server_command

REPO = Path(__file__).resolve().parents[2]


def run_module(env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "lab.endpoints.interop"], env=full, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


# --- pure functions ----------------------------------------------------------------------------


def test_server_command_for_transfer():
    env = {"ROLE": "server", "TESTCASE": "transfer", "SSLKEYLOGFILE": "/logs/keys.log", "QLOGDIR": "/logs/qlog/",
           "SERVER_PARAMS": "--no-cc-reset"}
    command = server_command(env, python="python3")
    assert command[:3] == ["python3", "-m", "lab.endpoints.server"]
    joined = " ".join(command)
    for part in ("--port 443", "--cert /certs/cert.pem", "--key /certs/priv.key", "--www /www", "--tcp-port 0",
                 "--keylog /logs/keys.log", "--qlog-dir /logs/qlog/", "--listen ::"):
        assert part in joined
    assert command[-1] == "--no-cc-reset"
    assert "--preferred-address" not in command


@pytest.mark.parametrize("testcase", ["handshake", "transfer", "http3", "rebind-port", "rebind-addr"])
def test_supported_server_testcases(testcase):
    assert server_command({"TESTCASE": testcase}) is not None


@pytest.mark.parametrize("testcase", ["", "retry", "zerortt", "resumption", "keyupdate", "x7f3a9c"])
def test_unsupported_testcases_have_no_command(testcase):
    assert server_command({"TESTCASE": testcase}) is None
    assert client_plan({"TESTCASE": testcase}) is None


def test_server_command_for_connectionmigration():
    assert server_command({"TESTCASE": "connectionmigration"}) is None  # no known address to advertise
    command = server_command({"TESTCASE": "connectionmigration", "LAB_PREFERRED_HOST": "193.167.100.100",
                              "LAB_INTEROP_ROOT": "/tmp/x"}, python="py")
    joined = " ".join(command)
    assert "--preferred-port 443" in joined and "--port 8443" in joined
    assert "--preferred-address 193.167.100.100:4443" in joined
    assert "--www /tmp/x/www" in joined
    v6 = server_command({"TESTCASE": "connectionmigration", "LAB_PREFERRED_HOST": "fd00:cafe:cafe:100::100"})
    assert "[fd00:cafe:cafe:100::100]:4443" in v6


def test_client_plan():
    urls = "https://server4:443/a.bin https://server4:443/b.bin"
    plan = client_plan({"TESTCASE": "transfer", "REQUESTS": urls, "SSLKEYLOGFILE": "/logs/keys.log",
                        "QLOGDIR": "/logs/qlog/"})
    assert plan.alpn == "hq-interop" and plan.urls == tuple(urls.split())
    assert plan.downloads == Path("/downloads") and plan.keylog == "/logs/keys.log" and plan.qlog_dir == "/logs/qlog/"
    assert plan.cafile is None
    assert client_plan({"TESTCASE": "http3", "REQUESTS": urls}).alpn == "h3"
    assert client_plan({"TESTCASE": "transfer", "LAB_INTEROP_ROOT": "/t"}).downloads == Path("/t/downloads")
    for testcase in ("handshake", "rebind-port", "rebind-addr", "connectionmigration"):
        assert client_plan({"TESTCASE": testcase}).alpn == "hq-interop"


# --- the real module -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("role", ["server", "client"])
def test_unknown_testcase_exits_127(role, tmp_path):
    result = run_module({"ROLE": role, "TESTCASE": "compliance-probe-5d1e0c", "LAB_INTEROP_ROOT": str(tmp_path),
                         "REQUESTS": "https://127.0.0.1:9/x"})
    assert result.returncode == UNSUPPORTED, result.stderr
    assert "unsupported" in result.stderr


@pytest.mark.timeout(30)
def test_entrypoint_script_passes_the_exit_code(tmp_path):
    script = REPO / "lab" / "endpoints" / "interop_entrypoint.sh"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ROLE": "server", "TESTCASE": "compliance-probe-77aa", "LAB_INTEROP_NO_SETUP": "1",
           "QLOGDIR": str(tmp_path / "qlog")}
    result = subprocess.run(["sh", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert result.returncode == UNSUPPORTED, result.stderr
    assert (tmp_path / "qlog").is_dir()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def interop_root(tmp_path):
    paths, _ = ensure_certificates(tmp_path / "certs")
    assert (paths.directory / "cert.pem").exists() and (paths.directory / "priv.key").exists()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "one.bin").write_bytes(os.urandom(2_000_000))
    (tmp_path / "www" / "two.bin").write_bytes(os.urandom(5_000))
    return tmp_path


def start_server(env: dict[str, str]) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(REPO), "ROLE": "server", **env}
    server = subprocess.Popen([sys.executable, "-m", "lab.endpoints.interop"], env=full, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        if line.startswith("serving QUIC"):
            return server
    server.kill()
    pytest.fail(f"the interop server did not start (exit {server.wait()})")


@pytest.mark.timeout(40)
@pytest.mark.parametrize("testcase", ["transfer", "http3", "connectionmigration"])
def test_real_transfer_through_the_interop_module(testcase, interop_root):
    port = free_udp_port()
    preferred = free_udp_port()
    server_env = {"TESTCASE": testcase, "LAB_INTEROP_ROOT": str(interop_root), "LAB_INTEROP_PORT": str(port),
                  "LAB_INTEROP_LISTEN": "127.0.0.1", "LAB_PREFERRED_HOST": "127.0.0.1",
                  "LAB_PREFERRED_PORT": str(preferred), "LAB_INTEROP_SPARE_PORT": str(free_udp_port())}
    server = start_server(server_env)
    try:
        # In the runner the client of a connectionmigration test gets TESTCASE=transfer.
        client_testcase = "transfer" if testcase == "connectionmigration" else testcase
        keylog = interop_root / "keys.log"
        result = run_module({"ROLE": "client", "TESTCASE": client_testcase, "LAB_INTEROP_ROOT": str(interop_root),
                             "REQUESTS": f"https://127.0.0.1:{port}/one.bin https://127.0.0.1:{port}/two.bin",
                             "SSLKEYLOGFILE": str(keylog), "LAB_INTEROP_CA": str(interop_root / "certs" / "ca.crt"),
                             "LAB_INTEROP_TIMEOUT": "20"}, timeout=30)
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stderr
    for name in ("one.bin", "two.bin"):
        assert (interop_root / "downloads" / name).read_bytes() == (interop_root / "www" / name).read_bytes()
    assert "SERVER_HANDSHAKE_TRAFFIC_SECRET" in keylog.read_text()
    expected_end = preferred if testcase == "connectionmigration" else port
    assert f"server address at the end: 127.0.0.1:{expected_end}" in result.stderr


@pytest.mark.parametrize("env, message", [
    ({"ROLE": "client", "TESTCASE": "transfer", "REQUESTS": "https://server:443/x", "LAB_INTEROP_TIMEOUT": "abc"},
     "LAB_INTEROP_TIMEOUT='abc': not a number; allowed: seconds"),
    ({"ROLE": "client", "TESTCASE": "transfer", "REQUESTS": "https://server:443/x", "PROBE_AFTER_MS": "-5"},
     "PROBE_AFTER_MS='-5': out of range; allowed: milliseconds, 0 (never) to 60000"),
    ({"ROLE": "server", "TESTCASE": "transfer", "LAB_INTEROP_PORT": "abc"},
     "LAB_INTEROP_PORT='abc': not a number; allowed: a port, 1-65535"),
    ({"ROLE": "server", "TESTCASE": "transfer", "LAB_INTEROP_PORT": "70000"},
     "LAB_INTEROP_PORT='70000': out of range; allowed: a port, 1-65535"),
])
def test_a_bad_contract_variable_is_one_line_and_exit_2(env, message, capsys) -> None:
    from lab.endpoints import interop

    assert interop.main(env) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert "Traceback" not in err
