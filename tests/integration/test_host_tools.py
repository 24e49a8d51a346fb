"""The host needs no Wireshark: a capture-checked run passes with tshark, editcap and mergecap hidden.

The tools are hidden in a private mount namespace (each one found on PATH is covered by a bind
mount of /dev/null), so the run cannot fall back on the host's copies even where they exist;
every capture check must then come from the lab image's tshark.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from lab.topology.load import ROOT

TOOLS = ("tshark", "editcap", "mergecap", "dumpcap")


@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace (unshare -m) needs root; CI runs as root")
def test_a_capture_checked_run_passes_with_the_host_wireshark_hidden(lab):
    hide = "; ".join(f"mount --bind /dev/null {shlex.quote(path)}" for tool in TOOLS
                     if (path := shutil.which(tool)))
    probe = " && ".join(f"! [ -x \"$(command -v {tool})\" ]" for tool in TOOLS[:3])
    script = (f"{hide + '; ' if hide else ''}{probe} || {{ echo 'a Wireshark tool is still usable' >&2; exit 99; }}; "
              f"exec {shlex.quote(sys.executable)} -m lab scenario run baseline")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((ROOT / "artifacts" / "baseline" / "latest" / "report.json").read_text())
    captures = [c for c in report["checks"] if c["source"] == "captures"]
    assert report["passed"] and captures and all(c["status"] == "passed" for c in captures), captures
    verified = next(c for c in report["checks"] if c["name"] == "capture_verified")
    assert verified["evidence"] > 100, verified  # packets really decoded, by the image's tshark
