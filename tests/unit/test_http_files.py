"""HttpFileHandler behind a minimal aioquic server, fetched over h3 and hq-interop on loopback."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from pathlib import Path

import pytest
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted, QuicEvent

from lab.certs import ensure_certificates
from lab.endpoints.quic.http_files import FILE_ALPNS, FetchError, HttpFileHandler, fetch_files, resolve_file


class FileServerProtocol(QuicConnectionProtocol):
    """What the lab's QUIC server does: create the handler after the handshake, forward every event."""

    def __init__(self, *args, www: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.www = www
        self.handler: HttpFileHandler | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and event.alpn_protocol in FILE_ALPNS:
            self.handler = HttpFileHandler(self, event.alpn_protocol, self.www)
        if self.handler is not None:
            self.handler.quic_event_received(event)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    paths, _ = ensure_certificates(tmp_path_factory.mktemp("certs"))
    return paths


@pytest.fixture()
def www(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(1_500_000))
    (root / "sub" / "small.txt").write_bytes(b"hello\n")
    (tmp_path / "secret.txt").write_bytes(b"outside www")
    return root


async def _serve(certs, www: Path):
    configuration = QuicConfiguration(is_client=False, alpn_protocols=list(FILE_ALPNS))
    configuration.load_cert_chain(str(certs.cert), str(certs.key))
    server = await serve("127.0.0.1", 0, configuration=configuration,
                         create_protocol=functools.partial(FileServerProtocol, www=www))
    return server, server._transport.get_extra_info("sockname")[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("alpn", FILE_ALPNS)
def test_files_are_served_over(alpn, certs, www, tmp_path):
    downloads = tmp_path / "downloads"

    async def scenario() -> list[Path]:
        server, port = await _serve(certs, www)
        try:
            return await fetch_files([f"https://localhost:{port}/big.bin", f"https://localhost:{port}/sub/small.txt"],
                                     alpn, downloads, cafile=str(certs.ca), timeout=15)
        finally:
            server.close()

    saved = asyncio.run(scenario())
    assert [p.name for p in saved] == ["big.bin", "small.txt"]
    assert sha(downloads / "big.bin") == sha(www / "big.bin")
    assert (downloads / "small.txt").read_bytes() == b"hello\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("alpn", FILE_ALPNS)
@pytest.mark.parametrize("path", ["/missing.bin", "/../secret.txt", "/%2e%2e/secret.txt", "/sub"])
def test_missing_and_outside_files_are_refused(alpn, path, certs, www, tmp_path):
    async def scenario() -> None:
        server, port = await _serve(certs, www)
        try:
            await fetch_files([f"https://localhost:{port}{path}"], alpn, tmp_path / "d", cafile=str(certs.ca),
                              timeout=10)
        finally:
            server.close()

    with pytest.raises(FetchError, match="404" if alpn == "h3" else "reset"):
        asyncio.run(scenario())
    assert not (tmp_path / "d" / "secret.txt").exists()


def test_resolve_file(www):
    assert resolve_file(www, "/big.bin") == (www / "big.bin").resolve()
    assert resolve_file(www, "/sub/small.txt?x=1") == (www / "sub" / "small.txt").resolve()
    for bad in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "big.bin", "/", "/sub", "/a\x00"):
        assert resolve_file(www, bad) is None, bad
