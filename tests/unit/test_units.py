"""lab/units.py: one meaning per unit, for scenario files, the CLI and the endpoints' command lines."""

from __future__ import annotations

import pytest

from lab.endpoints.client import build_parser
from lab.units import (
    human_bytes,
    human_seconds,
    parse_bit_rate,
    parse_byte_rate,
    parse_duration,
    parse_percent,
    parse_size,
)


def test_sizes_are_bytes_in_powers_of_ten_or_two() -> None:
    assert parse_size("8MB") == 8_000_000 and parse_size("512kB") == parse_size("512KB") == 512_000
    assert parse_size("1MiB") == 2**20 and parse_size("1.5GB") == 1_500_000_000
    assert parse_size(1234) == parse_size("1234") == parse_size("1234B") == 1234


@pytest.mark.parametrize("text, says", [
    ("8Mb", "Mb is megabits, and a size counts bytes (8Mb = 1MB)"),
    ("800kb", "kb is kilobits, and a size counts bytes (800kb = 100KB)"),
    ("8bit", "bit is bits"),
])
def test_a_lower_case_b_is_a_bit_and_is_refused_in_a_size(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"unknown size unit") as caught:
        parse_size(text)
    assert says in str(caught.value)


@pytest.mark.parametrize("text", ["8mb", "4M", "1Mi", "-1MB", "lots", True])
def test_other_sizes_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_durations_need_a_unit() -> None:
    assert parse_duration("500ms") == 0.5 and parse_duration("1.5s") == 1.5 and parse_duration("1min") == 60.0
    for bad, says in ((2, "needs a unit"), ("2", "not a duration"), ("2 hours", "unknown unit 'hours'"),
                      ("-1s", "must not be negative")):
        with pytest.raises(ValueError, match=says):
            parse_duration(bad)


def test_rates() -> None:
    assert parse_byte_rate("2MB/s") == 2_000_000
    with pytest.raises(ValueError, match="not a byte rate"):
        parse_byte_rate("2MB")
    with pytest.raises(ValueError, match="not a byte rate"):
        parse_byte_rate(2_000_000)
    assert parse_byte_rate("2000000", bare=True) == parse_byte_rate(2_000_000, bare=True) == 2_000_000
    assert parse_byte_rate("0", bare=True) == 0 and parse_byte_rate("1MB/s", bare=True) == 1_000_000
    assert parse_bit_rate("10mbit") == parse_bit_rate("10Mbit") == 10_000_000
    for bad in ("10MB", "10mb", "0mbit"):
        with pytest.raises(ValueError):
            parse_bit_rate(bad)


def test_percent() -> None:
    assert parse_percent("2.5%") == 2.5 and parse_percent(3) == 3.0
    with pytest.raises(ValueError, match="between 0 and 100"):
        parse_percent(120)


def test_human_forms_read_back() -> None:
    assert human_seconds(0.5) == "500ms" and human_seconds(40.0) == "40s"
    assert human_bytes(8_000_000) == "8MB" and parse_size(human_bytes(8_000_000)) == 8_000_000


def test_the_endpoint_client_reads_the_same_units() -> None:
    """What the runner writes (bare bytes, `6s`) and what a person types (`4MB`, `2MB/s`) both parse."""
    args = build_parser().parse_args(["--server", "10.0.0.1:443", "--size", "4MB", "--rate", "2MB/s",
                                      "--duration", "600ms"])
    assert (args.size, args.rate, args.duration) == (4_000_000, 2_000_000, 0.6)
    args = build_parser().parse_args(["--server", "10.0.0.1:443", "--size", "8000000", "--rate", "2000000"])
    assert (args.size, args.rate) == (8_000_000, 2_000_000)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--server", "10.0.0.1:443", "--size", "8Mb"])
