"""The ``vs2`` entry point itself."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import REPO


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """``vs2 plugins | head -1``: the pipe closes before the listing is written."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a line
    proc = subprocess.run(
        [sys.executable, "-m", "vs2_plugin.cli", "plugins"],
        cwd=REPO,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
    )
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
