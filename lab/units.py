"""Quantities as the lab writes them, parsed in one place (a leaf: no lab imports).

Scenario files, the CLI (``lab impair``, ``lab bench``, ``lab demo``) and the endpoints' command
lines all read these through the functions below, so ``8MB`` means the same thing everywhere:

- **duration**: a number and a unit, ``500ms``, ``2s``, ``1.5s``, ``1min`` (``m`` is minutes too)
  -> float seconds. The unit is required: a bare ``30`` could be seconds or milliseconds.
- **size**: ``B``, ``kB``/``KB``, ``MB``, ``GB`` (powers of 10), ``KiB``, ``MiB``, ``GiB`` (powers
  of 2), or a whole number of bytes -> int bytes. A lower-case ``b`` is a *bit*, as SI and IEC
  write it (``Mb`` is a megabit, ``kb`` a kilobit); a size counts bytes, so ``8Mb`` is refused with
  what it means (``8Mb = 1MB``), never silently read as 8 megabytes.
- **byte rate**: a size per second, ``2MB/s`` -> int bytes per second.
- **link rate**: tc's units, ``bit``, ``kbit``, ``mbit``, ``gbit`` (any case) -> int bits per second.
- **percent**: ``2``, ``0.5`` or ``"2%"``, from 0 to 100 -> float.

Every parser raises ``ValueError`` with a teaching message (what was wrong, and an example).
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER_AND_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "min": 60.0, "m": 60.0}
SIZE_UNITS: dict[str, int] = {"B": 1, "KB": 10**3, "kB": 10**3, "MB": 10**6, "GB": 10**9,
                              "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
BIT_RATE_UNITS: dict[str, int] = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
# Units of bits that someone may write where bytes are meant: prefix -> (its name, its scale).
_BIT_PREFIXES: dict[str, tuple[str, int]] = {"": ("bits", 1), "k": ("kilobits", 10**3), "K": ("kilobits", 10**3),
                                             "M": ("megabits", 10**6), "G": ("gigabits", 10**9),
                                             "Ki": ("kibibits", 2**10), "Mi": ("mebibits", 2**20),
                                             "Gi": ("gibibits", 2**30)}
_BITS = re.compile(r"^(|k|K|M|G|Ki|Mi|Gi)(b|bit)$")


def parse_duration(value: Any) -> float:
    """``"500ms"`` -> 0.5, ``"2s"`` -> 2.0, ``"1min"`` -> 60.0. A unit is required; never negative."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r}; write e.g. 500ms, 2s, 1min")
    if isinstance(value, int | float):
        raise ValueError(f"{value!r} needs a unit: write e.g. {value}s or {value}ms")
    match = _NUMBER_AND_UNIT.match(value)
    if not match or match.group(2) not in DURATION_UNITS:
        unit = match.group(2) if match else ""
        hint = f"unknown unit {unit!r}; " if match and unit else ""
        raise ValueError(f"not a duration: {value!r}; {hint}write e.g. 500ms, 2s, 1min")
    number = float(match.group(1))
    if number < 0:
        raise ValueError(f"must not be negative: {value!r}")
    return number * DURATION_UNITS[match.group(2)]


def parse_size(value: Any) -> int:
    """``"8MB"`` -> 8_000_000, ``"1MiB"`` -> 1_048_576, ``512`` or ``"512"`` -> 512 (bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        number, unit = float(value), "B"
    else:
        match = _NUMBER_AND_UNIT.match(str(value))
        if not match:
            raise ValueError(f"not a size: {value!r}; write e.g. 512KB, 8MB, 1MiB")
        number, unit = float(match.group(1)), match.group(2) or "B"
    if unit not in SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; {_bits_hint(number, unit)}"
                         "use B, KB, MB, GB, KiB, MiB or GiB")
    if number < 0:
        raise ValueError(f"must not be negative: {value!r}")
    return int(number * SIZE_UNITS[unit])


def _bits_hint(number: float, unit: str) -> str:
    """Why a unit of bits is not a size: ``Mb is megabits, and a size counts bytes (8Mb = 1MB); ``."""
    bits = _BITS.match(unit)
    if not bits:
        return "(bytes; bits per second belong in an impairment rate such as 10mbit) "
    name, scale = _BIT_PREFIXES[bits.group(1)]
    shown = f"{number:g}{unit}"
    return f"{unit} is {name}, and a size counts bytes ({shown} = {human_bytes(int(number * scale / 8))}); "


def parse_byte_rate(value: Any, bare: bool = False) -> int:
    """``"2MB/s"`` -> 2_000_000 bytes per second.

    ``bare=True`` (command lines) also takes a whole number of bytes per second, ``"0"`` included.
    """
    if bare and (isinstance(value, int) and not isinstance(value, bool) or str(value).strip().isdigit()):
        return int(value)
    if not isinstance(value, str) or not value.strip().endswith("/s"):
        raise ValueError(f"not a byte rate: {value!r}; write e.g. 2MB/s or 500KB/s")
    return parse_size(value.strip()[:-2])


def parse_bit_rate(value: Any) -> int:
    """``"10mbit"`` -> 10_000_000 bits per second (tc's units)."""
    match = _NUMBER_AND_UNIT.match(value) if isinstance(value, str) else None
    if not match or match.group(2).lower() not in BIT_RATE_UNITS:
        raise ValueError(f"not a link rate: {value!r}; write e.g. 500kbit, 10mbit, 1gbit")
    number = float(match.group(1))
    if number <= 0:
        raise ValueError(f"must be positive: {value!r}")
    return int(number * BIT_RATE_UNITS[match.group(2).lower()])


def parse_percent(value: Any) -> float:
    """``2``, ``0.5`` or ``"2%"`` -> a percentage in [0, 100]."""
    if isinstance(value, bool):
        raise ValueError(f"not a percentage: {value!r}")
    text = str(value).strip().removesuffix("%")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"not a percentage: {value!r}; write e.g. 1 or 2.5%") from None
    if not 0 <= number <= 100:
        raise ValueError(f"must be between 0 and 100: {value!r}")
    return number


def human_seconds(seconds: float) -> str:
    """0.5 -> ``"500ms"``, 2.0 -> ``"2s"``: a duration as a scenario would write it."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:g}s"


def human_bytes(count: int) -> str:
    """8_000_000 -> ``"8MB"``: a size as a scenario would write it (powers of 10)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if count >= scale:
            return f"{count / scale:g}{unit}"
    return f"{count}B"


__all__ = ["BIT_RATE_UNITS", "DURATION_UNITS", "SIZE_UNITS", "human_bytes", "human_seconds", "parse_bit_rate",
           "parse_byte_rate", "parse_duration", "parse_percent", "parse_size"]
