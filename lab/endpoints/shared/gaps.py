"""The client's data-gap meter (pure): every inter-arrival gap of application data, to 1 ms.

A gap of ``threshold`` or more is reported on its own (a ``data_gap`` event with its start and
end), so that a migration's disruption is measured exactly; every gap of 1 ms or more also goes
into a histogram with 1 ms buckets (a ``gap_histogram`` event at the end), so that the lab's own
noise floor below the threshold can be seen too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

DOWNLOAD_THRESHOLD_S = 0.005  # data arrives every < 1 ms at the lab's rates: 5 ms is a stall
ECHO_THRESHOLD_S = 0.05  # echo replies arrive once per interval (20 ms by default)


@dataclass
class GapMeter:
    threshold_s: float = DOWNLOAD_THRESHOLD_S
    counts: Counter[int] = field(default_factory=Counter)  # floor(gap in ms) -> how many, for gaps >= 1 ms
    samples: int = 0  # arrivals measured
    max_ms: float = 0.0
    last_mono: float | None = None
    last_wall: float = 0.0

    def arrival(self, mono: float, wall: float) -> tuple[float, float, float] | None:
        """Record data arriving now; ``(start_wall, end_wall, gap_ms)`` when it ends a reportable gap."""
        found = None
        if self.last_mono is not None:
            gap = mono - self.last_mono
            self.samples += 1
            ms = gap * 1000.0
            self.max_ms = max(self.max_ms, ms)
            if ms >= 1.0:
                self.counts[int(ms)] += 1
            if gap >= self.threshold_s:
                found = (self.last_wall, wall, round(ms, 3))
        self.last_mono, self.last_wall = mono, wall
        return found

    def histogram(self) -> dict[str, object]:
        """The fields of a ``gap_histogram`` event."""
        return {"bucket_ms": 1, "counts": {str(ms): n for ms, n in sorted(self.counts.items())},
                "samples": self.samples, "max_ms": round(self.max_ms, 3),
                "threshold_ms": round(self.threshold_s * 1000, 3)}


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, configuration) out of the collector's sight.

    A full collection walks every tracked object; after start-up that is tens of thousands of
    objects that live as long as the process. Measured in the client container: full collections
    of 25-29 ms, each a stall of the data the lab measures. ``gc.freeze`` keeps them out of later
    passes; call it once, when start-up is done.
    """
    import gc

    gc.collect()
    gc.freeze()
