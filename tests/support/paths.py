"""Paths every test area uses: the repository, the shared real media, the venv's console scripts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# real media and caption data of ../shared (or VS2_SHARED_DIR); tests that need them skip without them
SHARED = Path(os.environ.get("VS2_SHARED_DIR", REPO.parent / "shared"))
MEDIA = SHARED / "data" / "media"
VENV_BIN = Path(sys.executable).parent


def linked_folder(source: Path, folder: Path) -> Path:
    """``folder`` holding a link to each entry of ``source``: a script can add files beside them
    (a shared run folder's, e.g. the session's demo) without writing into ``source``."""
    folder.mkdir(parents=True)
    for item in source.iterdir():
        (folder / item.name).symlink_to(item)
    return folder
