"""The client's control socket: a unix socket taking one JSON command per line.

The lab's controller (or a test) drives a running client through it, so that a migration
happens at a chosen moment of a live transfer:

- ``{"cmd": "migrate", "local": "10.203.2.10"}``: active migration to a new socket bound to
  that local address (``"rotate_cid": false`` to keep the connection ID);
- ``{"cmd": "rebind"}``: new socket, same local address, new port (NAT rebinding; same CID);
- ``{"cmd": "status"}``: the local address, peer address and per-path counters.

Each command gets one JSON line back: ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlServer:
    def __init__(self, path: str | Path, handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    command = json.loads(line)
                    if not isinstance(command, dict):
                        raise ValueError("a command is a JSON object")
                    reply = await self.handler(command)
                except Exception as exc:  # a bad command must not stop the client
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def send_command(path: str | Path, command: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to a client's control socket and return its reply."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    try:
        writer.write((json.dumps(command) + "\n").encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return json.loads(line)
    finally:
        writer.close()
