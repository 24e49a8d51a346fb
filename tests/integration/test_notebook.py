"""docs/tutorial.ipynb runs end to end against the real lab (with nbclient), so it cannot rot.

The kernel is this venv's Python: a ``python3`` kernelspec naming ``sys.executable`` is put first
on JUPYTER_PATH, so a user's own ``python3`` kernel (another Python, without the lab) cannot shadow it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from lab.topology.load import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def _report(text: str, scenario: str) -> dict:
    match = re.search(rf"^run directory: (\S*/artifacts/{scenario}/[^/\s]+)$", text, re.M)
    assert match, f"no run directory for {scenario} in the notebook's output:\n{text}"
    return json.loads((Path(match.group(1)) / "report.json").read_text())


@pytest.mark.timeout(600)
def test_the_tutorial_notebook_runs_against_the_lab(lab, tmp_path, monkeypatch) -> None:
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lab venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit it with outputs cleared"
    started = time.monotonic()
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(ROOT)}}).execute()  # raises CellExecutionError
    took = time.monotonic() - started
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = "\n".join(_text(c) for c in code)

    assert "nat-rebinding: PASSED" in text, text
    rebinding = _report(text, "nat-rebinding")
    assert rebinding["passed"] and rebinding["metrics"]["paths_validated"] >= 2
    svgs = [o for c in code for o in c.get("outputs", []) if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 2 and all("Goodput" in o["data"]["image/svg+xml"] for o in svgs)

    # The printed ratios are the two transports' figures of the run the notebook made, not typed-in numbers.
    figures = _report(text, "tcp-vs-quic")["metrics"]["by_transport"]
    for key in ("disruption", "recovery"):
        ratio = figures["tcp"][f"{key}_ms"] / figures["quic"][f"{key}_ms"]
        assert f"TCP/QUIC {key} ratio: {ratio:.2f}\n" in text, text
    print(f"notebook executed in {took:.1f} s")
