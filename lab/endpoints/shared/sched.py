"""Ask the kernel for a short scheduler slice for this thread (EEVDF, Linux 6.12 and later).

The endpoints share 2 cores with the captures, Docker and the controller. A thread woken by a
datagram or its pacing timer waited for the running task's slice to end (the loops' stall record:
"waited", a callback much longer than its CPU time), a gap of 4-9 ms in the data the lab measures.
EEVDF gives a task that asks for a shorter slice an earlier deadline, so it preempts at wakeup;
it gets no more CPU than before, and no capability is needed. Older kernels ignore the request
for SCHED_OTHER (their slice stays the default) and the syscall's absence is not an error.
"""

from __future__ import annotations

import ctypes
import os
import struct

SLICE_ENV = "LAB_SCHED_SLICE_US"
DEFAULT_SLICE_US = 100  # the kernel's minimum; measured: 9 data gaps >= 5 ms in 5 baselines, 31 with none
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
_SYS_SCHED_GETATTR = {"x86_64": 315, "aarch64": 275}
_ATTR = "IIQiIQQQII"  # struct sched_attr, SCHED_ATTR_SIZE_VER1 (56 bytes)


def slice_from_env(environ: dict[str, str]) -> int | None:
    """The slice to ask for, in microseconds; None when turned off (``LAB_SCHED_SLICE_US=0``)."""
    text = environ.get(SLICE_ENV, "").strip()
    if not text:
        return DEFAULT_SLICE_US
    value = int(text)  # a bad value is the operator's mistake: fail loudly at start-up
    if value < 0:
        raise ValueError(f"{SLICE_ENV}={text}: a number of microseconds >= 0 (0 turns it off)")
    return value or None


def _syscall(table: dict[str, int]) -> int | None:
    return table.get(os.uname().machine)


def request_slice(us: int | None) -> int | None:
    """Set this thread's slice to ``us`` microseconds; the slice the kernel reports after (ns), or None."""
    setattr_nr, getattr_nr = _syscall(_SYS_SCHED_SETATTR), _syscall(_SYS_SCHED_GETATTR)
    if us is None or setattr_nr is None or getattr_nr is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(struct.pack(_ATTR, 56, os.SCHED_OTHER, 0, os.getpriority(os.PRIO_PROCESS, 0),
                                                   0, us * 1000, 0, 0, 0, 0))
    if libc.syscall(setattr_nr, 0, attr, 0) != 0:
        return None
    out = ctypes.create_string_buffer(56)
    if libc.syscall(getattr_nr, 0, out, 56, 0) != 0:
        return None
    return struct.unpack(_ATTR, out.raw)[5] or None
