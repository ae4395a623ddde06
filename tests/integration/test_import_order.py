"""The plugin's LLaMA-Factory registrations hold whichever module a program imports first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = (
    "from llamafactory.data.template import TEMPLATES\n"
    "from llamafactory.data.mm_plugin import PLUGINS\n"
    "assert 'video_salmonn2' in TEMPLATES and 'video_salmonn2' in PLUGINS, sorted(PLUGINS)\n"
)


@pytest.mark.parametrize(
    "first",
    [
        "import vs2_plugin.data.mm_plugin",  # its base class imports LLaMA-Factory mid-definition
        "import llamafactory.data.template",
        "import vs2_plugin.modeling.geometry",
    ],
)
def test_template_and_plugin_are_registered_whatever_is_imported_first(first):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-c", f"{first}\n{CHECK}"], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "PluginLoadWarning" not in res.stderr, res.stderr[-2000:]
