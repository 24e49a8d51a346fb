"""A reader that leaves early (`python -m lab explain attacks | head -1`) gets no traceback."""

import subprocess
import sys


def test_a_closed_stdout_is_no_traceback():
    proc = subprocess.Popen([sys.executable, "-m", "lab", "explain", "attacks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the program writes: its first write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
