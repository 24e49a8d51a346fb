"""A userspace delay line: the fallback for delay and jitter when the kernel has no sch_netem.

iptables sends the link's packets to an NFQUEUE (``-j NFQUEUE --queue-num N --queue-bypass``);
this process receives each packet's id from the kernel and issues its NF_ACCEPT verdict later,
from a timer heap, at arrival + delay + uniform(-jitter, +jitter) (netem's default jitter
distribution; like netem, jitter can reorder packets). Verdicts may be given out of order.

Bound with ctypes to libnetfilter_queue.so.1 (Debian package libnetfilter-queue1): there is no
NetfilterQueue wheel. The queue is opened in NFQNL_COPY_META mode and verdicts carry no payload,
so packets are never copied or rewritten in userspace: checksum offload needs no change.

    python -m lab.endpoints.router.delayline --queue 1 --delay-ms 25 --jitter-ms 5

On SIGTERM/SIGINT every held packet is released (accepted) before the queue closes, so a
reconfiguration loses no packet; with ``--queue-bypass`` on the rules, traffic flows undelayed
while no delay line is bound. A state file (``--state``) reports parameters and counters each second.
Exit code 127: libnetfilter_queue is missing (unsupported here).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import heapq
import json
import os
import random
import select
import signal
import socket
import sys
import time
from pathlib import Path

AF_INET = socket.AF_INET
NFQNL_COPY_META = 1
NF_DROP = 0
NF_ACCEPT = 1
MSG_DONTWAIT = 0x40
LIBRARY = "libnetfilter_queue.so.1"
STATE_DIR = Path("/run/lab")

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class Unsupported(RuntimeError):
    """The library (or the kernel's nfnetlink_queue) is not available."""


def load_library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as exc:
        raise Unsupported(f"{LIBRARY} not found ({exc}); install the Debian package libnetfilter-queue1") from None
    p, i, u32, u16 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint16
    signatures = {
        "nfq_open": (p, []),
        "nfq_close": (i, [p]),
        "nfq_bind_pf": (i, [p, u16]),
        "nfq_unbind_pf": (i, [p, u16]),
        "nfq_create_queue": (p, [p, u16, _CALLBACK, p]),
        "nfq_destroy_queue": (i, [p]),
        "nfq_set_mode": (i, [p, ctypes.c_uint8, u32]),
        "nfq_set_queue_maxlen": (i, [p, u32]),
        "nfq_fd": (i, [p]),
        "nfq_nfnlh": (p, [p]),
        "nfq_handle_packet": (i, [p, ctypes.c_char_p, i]),
        "nfq_get_msg_packet_hdr": (p, [p]),
        "nfq_set_verdict": (i, [p, u32, u32, u32, p]),
        "nfq_set_verdict_batch": (i, [p, u32, u32]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class DelayLine:
    """Hold each queued packet for delay ± jitter, then accept it."""

    def __init__(self, queue: int, delay: float, jitter: float = 0.0, maxlen: int = 10000,
                 rng: random.Random | None = None) -> None:
        self.queue, self.delay, self.jitter, self.maxlen = queue, delay, jitter, maxlen
        self.rng = rng or random.Random()
        self.held: list[tuple[float, int]] = []  # (release time, packet id)
        self.packets = 0
        self.max_held = 0
        self.lib: ctypes.CDLL | None = None
        self._handle = self._queue = None
        self._callback = _CALLBACK(self._on_packet)  # keep a reference: ctypes does not
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._buffer = ctypes.create_string_buffer(256 * 1024)
        self._now = time.monotonic()
        self.running = True

    # --- the pure part: when does a packet leave ------------------------------------------------

    def release_time(self, arrival: float) -> float:
        if self.jitter:
            return arrival + max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
        return arrival + self.delay

    def due(self, now: float) -> list[int]:
        """Pop the ids whose time has come (in release order)."""
        ready = []
        while self.held and self.held[0][0] <= now:
            ready.append(heapq.heappop(self.held)[1])
        return ready

    def hold(self, packet_id: int, arrival: float) -> None:
        heapq.heappush(self.held, (self.release_time(arrival), packet_id))
        self.packets += 1
        self.max_held = max(self.max_held, len(self.held))

    # --- the kernel side ------------------------------------------------------------------------

    def open(self) -> None:
        lib = self.lib = load_library()
        handle = lib.nfq_open()
        if not handle:
            raise Unsupported(f"nfq_open failed (errno {ctypes.get_errno()}): no nfnetlink_queue or no CAP_NET_ADMIN")
        lib.nfq_unbind_pf(handle, AF_INET)  # harmless on new kernels; needed on old ones
        if lib.nfq_bind_pf(handle, AF_INET) < 0:
            raise Unsupported(f"nfq_bind_pf failed (errno {ctypes.get_errno()})")
        queue = lib.nfq_create_queue(handle, self.queue, self._callback, None)
        if not queue:
            raise RuntimeError(f"nfq_create_queue({self.queue}) failed (errno {ctypes.get_errno()}): "
                               "is another process bound to this queue?")
        if lib.nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0:
            raise RuntimeError("nfq_set_mode(NFQNL_COPY_META) failed")
        lib.nfq_set_queue_maxlen(queue, self.maxlen)
        self._handle, self._queue = handle, queue
        fd = lib.nfq_fd(handle)
        for option in (socket.SO_RCVBUF, 33):  # 33 = SO_RCVBUFFORCE (root may exceed rmem_max)
            size = ctypes.c_int(8 * 1024 * 1024)
            self._libc.setsockopt(fd, socket.SOL_SOCKET, option, ctypes.byref(size), ctypes.sizeof(size))

    def _on_packet(self, _qh: int | None, _msg: int | None, nfad: int | None, _data: int | None) -> int:
        assert self.lib is not None
        header = self.lib.nfq_get_msg_packet_hdr(nfad)
        if header:
            packet_id = socket.ntohl(ctypes.cast(header, ctypes.POINTER(ctypes.c_uint32))[0])
            self.hold(packet_id, self._now)
        return 0

    def _verdict(self, ids: list[int], verdict: int = NF_ACCEPT) -> None:
        assert self.lib is not None
        if not ids:
            return
        if not self.jitter and len(ids) > 1:
            # Without jitter packets leave in arrival (= id) order: one batch verdict covers them all.
            self.lib.nfq_set_verdict_batch(self._queue, ids[-1], verdict)
            return
        for packet_id in ids:
            self.lib.nfq_set_verdict(self._queue, packet_id, verdict, 0, None)

    def _drain(self, fd: int) -> None:
        assert self.lib is not None
        for _ in range(512):
            size = self._libc.recv(fd, self._buffer, len(self._buffer), MSG_DONTWAIT)
            if size < 0:
                err = ctypes.get_errno()
                if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    return
                if err == errno.ENOBUFS:  # the kernel dropped queue messages: keep going
                    continue
                raise OSError(err, os.strerror(err))
            self._now = time.monotonic()
            self.lib.nfq_handle_packet(self._handle, self._buffer, size)

    def run(self, state: Path | None = None) -> None:
        assert self.lib is not None
        fd = self.lib.nfq_fd(self._handle)
        next_state = 0.0
        while self.running:
            now = time.monotonic()
            self._verdict(self.due(now))
            if state is not None and now >= next_state:
                self.write_state(state)
                next_state = now + 1.0
            # select (microsecond timeout), not poll/epoll (millisecond): release times stay precise.
            timeout = 1.0 if not self.held else max(0.0, self.held[0][0] - time.monotonic())
            try:
                readable, _, _ = select.select([fd], [], [], min(timeout, 1.0))
            except InterruptedError:
                continue
            if readable:
                self._drain(fd)
        self.close()
        if state is not None:
            self.write_state(state)

    def close(self) -> None:
        """Accept every held packet (none is lost on reconfiguration), then unbind."""
        if self.lib is None or self._queue is None:
            return
        ids = sorted(packet_id for _, packet_id in self.held)
        self.held.clear()
        for packet_id in ids:
            self.lib.nfq_set_verdict(self._queue, packet_id, NF_ACCEPT, 0, None)
        self.lib.nfq_destroy_queue(self._queue)
        self.lib.nfq_close(self._handle)
        self._queue = self._handle = None

    def write_state(self, path: Path) -> None:
        data = {"pid": os.getpid(), "queue": self.queue, "delay_ms": self.delay * 1000,
                "jitter_ms": self.jitter * 1000, "packets": self.packets, "held": len(self.held),
                "max_held": self.max_held, "running": self.running, "time": time.time()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        tmp.replace(path)


def state_path(queue: int) -> Path:
    return STATE_DIR / f"delayline-{queue}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.endpoints.router.delayline",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--queue", type=int, required=True, help="NFQUEUE number")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay added to every packet")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform jitter, +/- this much")
    parser.add_argument("--maxlen", type=int, default=10000, help="kernel queue length (packets)")
    parser.add_argument("--state", type=Path, help="JSON state file (default /run/lab/delayline-N.json)")
    args = parser.parse_args(argv)
    if args.delay_ms < 0 or args.jitter_ms < 0:
        parser.error("--delay-ms and --jitter-ms must not be negative")
    line = DelayLine(args.queue, args.delay_ms / 1000, args.jitter_ms / 1000, args.maxlen)
    state = args.state or state_path(args.queue)
    state.parent.mkdir(parents=True, exist_ok=True)

    def stop(*_: object) -> None:
        line.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        line.open()
    except Unsupported as exc:
        print(f"delayline: unsupported: {exc}", file=sys.stderr, flush=True)
        return 127
    except RuntimeError as exc:
        print(f"delayline: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"delayline: queue {args.queue}, delay {args.delay_ms:g} ms, jitter ±{args.jitter_ms:g} ms",
          file=sys.stderr, flush=True)
    line.run(state=state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
