"""The spool of in-memory media: one folder per process, orphans removed, bounded size."""

from __future__ import annotations

import os
import subprocess
import sys

from vs2_plugin.data import spool


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_folders_of_processes_that_no_longer_run_are_removed(tmp_path):
    dead = tmp_path / f"{spool.PREFIX}{_dead_pid()}_abc"
    alive = tmp_path / f"{spool.PREFIX}{os.getppid()}_def"  # the process that started this one
    mine = tmp_path / f"{spool.PREFIX}{os.getpid()}_ghi"
    unnamed = tmp_path / f"{spool.PREFIX}xyz"  # no pid in the name: not ours to judge
    for folder in (dead, alive, mine, unnamed):
        folder.mkdir()
        (folder / "clip").write_bytes(b"x")
    assert spool.remove_orphans(tmp_path) == []  # just used: may be another container's live spool
    for folder in (dead, alive, mine, unnamed):
        os.utime(folder / "clip", (0, 0))
        os.utime(folder, (0, 0))
    assert spool.remove_orphans(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and mine.exists() and unnamed.exists()


def test_trim_removes_the_least_recently_used_files_but_never_the_one_just_written(tmp_path):
    for age, name in enumerate(("old", "mid", "new")):
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, ns=(age * 10**9, age * 10**9))
    spool.trim(tmp_path, keep=str(tmp_path / "old"), limit=200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]
    os.utime(tmp_path / "old")  # used just now: a request may be reading it
    spool.trim(tmp_path, keep=str(tmp_path / "new"), limit=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]
    spool.trim(tmp_path, keep=str(tmp_path / "new"), limit=0, in_use_s=0)
    assert [p.name for p in tmp_path.iterdir()] == ["new"]


def test_the_same_upload_is_written_once_and_the_spool_stays_under_its_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(spool, "_folder", None)
    monkeypatch.setattr(spool.tempfile, "tempdir", str(tmp_path))
    a = spool.write(b"a" * 100, limit=250)
    folder = os.path.dirname(a)
    assert os.path.basename(folder).startswith(f"{spool.PREFIX}{os.getpid()}_") and folder.startswith(str(tmp_path))
    os.utime(a, ns=(2 * 10**9, 2 * 10**9))  # a and b used long ago, b longer
    b = spool.write(b"b" * 100, limit=250)
    os.utime(b, ns=(10**9, 10**9))
    assert spool.write(b"a" * 100, limit=250) == a  # written once; used now
    assert os.path.getmtime(a) > os.path.getmtime(b)
    c = spool.write(b"c" * 100, limit=250)  # 300 bytes > 250: the least recently used goes
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in (a, c))
