"""The matrix grid (pure): cell status from a report, unsupported apart from failed, shards joined."""

from __future__ import annotations

import json

from lab.report.matrix import (
    ERROR,
    FAIL,
    PASS,
    UNSUPPORTED,
    cell_from_report,
    grid_html,
    grid_markdown,
    load_cells,
    write_matrix,
)


def report(passed=True, error=None, checks=(), **extra):
    return {"scenario": "nat-rebinding", "passed": passed, "error": error, "checks": list(checks),
            "metrics": {"disruption_ms": 70.0, "validation_ms": 1.5}, **extra}


def test_statuses():
    assert cell_from_report("qh3", "aioquic", report(), "cells/x").status == PASS
    failed = cell_from_report("aioquic", "qh3", report(False, checks=[
        {"name": "transfer_sha256", "status": "failed", "observed": "f: not downloaded"}]), "r")
    assert failed.status == FAIL and failed.reason == "transfer_sha256: f: not downloaded"
    unsupported = cell_from_report("x:1", "aioquic", report(False, checks=[
        {"name": "client_exit", "status": "failed", "observed": "x:1 exited 127 (test case unsupported)"}]), "r")
    assert unsupported.status == UNSUPPORTED
    timeout = cell_from_report("a", "b", report(False, "timeout: the scenario did not finish within 30 s"), "r")
    assert timeout.status == FAIL  # the stacks did not finish; the lab played every step
    assert cell_from_report("a", "b", report(False, "client container died"), "r").status == ERROR
    gone = report(False, "stack qh3: the server exited mid-run (code 1)")
    assert cell_from_report("a", "qh3", gone, "r").status == FAIL
    optional = cell_from_report("a", "b", report(False, checks=[
        {"name": "qlog_client", "status": "not verified", "source": "qlog", "observed": "none"},
        {"name": "paths", "status": "failed", "observed": "1"}], optional_evidence=["qlog"]), "r")
    assert optional.reason.startswith("paths")


def test_grid_and_shards(tmp_path):
    one = [cell_from_report("qh3", "aioquic", report(), "cells/a")]
    two = [cell_from_report("aioquic", "qh3", report(False, "timeout: slow"), "cells/b")]
    write_matrix(tmp_path / "shard-1", one, "m")
    write_matrix(tmp_path / "shard-2", two, "m")
    cells = load_cells([tmp_path / "shard-1", tmp_path / "shard-2"])
    assert [c.run for c in cells] == ["shard-1/cells/a", "shard-2/cells/b"]
    markdown, html = grid_markdown(cells, "t"), grid_html(cells, "t")
    assert "| qh3 |" in markdown and "| aioquic |" in markdown and "1 pass, 1 fail" in markdown
    assert "href='shard-2/cells/b/report.html'" in html and "<script" not in html
    assert json.loads((tmp_path / "shard-1" / "matrix.json").read_text())["cells"][0]["client"] == "qh3"
