"""A quiet console for long pipeline commands (``vs2 demo``, ``vs2 mrdpo``, ``vs2 rebirth``).

Inside ``with RunConsole(log_path):`` the process's file descriptors 1 and 2 point at the run's
log file, so everything LLaMA-Factory, transformers, datasets, DeepSpeed, PyAV, tqdm bars and
``warnings`` write -- from Python or C, in this process or in a child that inherits the
descriptors -- lands in ``log_path``. The terminal keeps only what the console writes: a header
naming the log file, one line per step (``stage · round · step``, a progress bar with the
ETA, redrawn in place on a terminal, written once when the step ends otherwise), the warnings
of this package, and what the command prints after the block (the stage table).

Pipeline code marks its steps with the module-level :func:`step` / :func:`stage` /
:func:`set_round`; they do nothing when no console is active, so library calls and tests
behave as before. ``RunConsole(verbose=True)`` leaves the descriptors alone (everything shows,
as without a console) and still prints the step lines.

A step that fails prints one line naming the log file and, where the step knows it, the item
being processed (e.g. the caption being sampled); the exception then goes on to the caller.

A command uses it in its ``run(args)``::

    add_console_arguments(parser)                       # --verbose
    with run_console(out / "logs" / "caption.log", args, "vs2 caption"), stage("caption"):
        ...                                            # sample(), run_training() report their own steps
    print(table)                                       # after the block: straight to the terminal
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from vs2_plugin.errors import Vs2Error

#: Seconds between redraws of a live progress bar.
REDRAW_S = 0.5
#: Without a terminal, a step still running after this many seconds prints a status line again.
HEARTBEAT_S = 300.0

_ACTIVE: RunConsole | None = None


class Progress:
    """What a step reports while it runs: ``(done, total, current item or None)``."""

    def __call__(self) -> tuple[int, int | None, str | None]:  # pragma: no cover - interface
        raise NotImplementedError


class JsonlProgress(Progress):
    """Progress of a step that appends one JSONL row per finished item (sampling, labelling).

    ``keys`` are the items in processing order; rows of ``paths`` whose ``key`` is one of them
    count as done, and the first key not done is the item in progress.
    """

    def __init__(self, paths: list[Path], keys: list[str]):
        self.paths, self.keys, self._wanted = paths, keys, set(keys)

    def __call__(self) -> tuple[int, int | None, str | None]:
        done: set[str] = set()
        for path in self.paths:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            for line in text.splitlines():
                try:
                    key = json.loads(line).get("key")
                except (json.JSONDecodeError, AttributeError):
                    continue  # a torn last line while it is being written
                if key in self._wanted:
                    done.add(key)
        current = next((k for k in self.keys if k not in done), None)
        return len(done), len(self.keys), current


class TrainerLogProgress(Progress):
    """Progress of a LLaMA-Factory training run from ``<output_dir>/trainer_log.jsonl``.

    Only entries written after the step started count (a later round may append to the same file).
    """

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "trainer_log.jsonl"
        self.offset = self.path.stat().st_size if self.path.is_file() else 0

    def __call__(self) -> tuple[int, int | None, str | None]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return 0, None, None
        for line in reversed(lines):
            try:
                entry = json.loads(line)
                return int(entry["current_steps"]), int(entry["total_steps"]), None
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return 0, None, None


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def progress_text(label: str, done: int, total: int | None, elapsed: float, width: int = 80, unit: str = "it") -> str:
    """One status line: ``label  [####....]  3/8 it  0:42<1:10`` (bar and ETA when the total is known).

    >>> progress_text("sample", 2, 4, 10.0, width=60)
    'sample  [##########..........]  2/4 it  10s<10s'
    >>> progress_text("judge", 0, None, 3.2)
    'judge  3s'
    """
    if not total:
        return f"{label}  {_fmt_s(elapsed)}"
    eta = _fmt_s(elapsed / done * (total - done)) if done else "?"
    tail = f"  {done}/{total} {unit}  {_fmt_s(elapsed)}<{eta}"
    bar_w = max(10, min(20, width - len(label) - len(tail) - 4))
    filled = int(bar_w * min(done, total) / total)
    return f"{label}  [{'#' * filled}{'.' * (bar_w - filled)}]{tail}"


class RunConsole:
    """Route a command's output to ``log_path``; the terminal shows steps, warnings and the result.

    :param log_path: the run's log file (appended to; a rerun adds to it).
    :param verbose: keep every library message on the terminal (no redirection).
    :param progress: live progress bars on a terminal (``False``: one line per finished step).
    :param stream: where console lines go (default: the terminal's stderr, saved before redirecting).
    """

    def __init__(
        self,
        log_path: str | Path,
        *,
        verbose: bool = False,
        progress: bool = True,
        stream: TextIO | None = None,
        command: str = "vs2",
    ):
        self.log_path = Path(log_path).resolve()
        self.verbose, self.progress, self.command = verbose, progress, command
        self._stream = stream
        self._saved: list[int] = []
        self._log_fd: int | None = None
        self._stages: list[str] = []
        self._round: str | None = None
        self._lock = threading.Lock()
        self._live = False
        self._showwarning = None
        self._py_streams: tuple = ()
        self.lines_written = 0

    # -------------------------------------------------------------------- context
    def __enter__(self) -> RunConsole:
        global _ACTIVE
        from vs2_plugin.files import check_folder_can_be_made

        # the output folder is under a file, or not writable: said with the part at fault
        check_folder_can_be_made(self.log_path.parent, f"{self.log_path.parent} (the log folder)")
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Vs2Error(f"{self.log_path.parent}: cannot create the log folder ({exc.strerror})") from None
        sys.stdout.flush()
        sys.stderr.flush()
        self._own_stream = False
        if self._stream is None:
            try:
                self._stream = os.fdopen(
                    os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True
                )
                self._own_stream = True
            except (OSError, ValueError, AttributeError):  # no real descriptor (a notebook): nothing to redirect
                self._stream, self.verbose = sys.stderr, True
        self._live = self.progress and self._stream.isatty()
        if not self.verbose:
            self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._saved = [os.dup(1), os.dup(2)]
            os.dup2(self._log_fd, 1)
            os.dup2(self._log_fd, 2)
            # Python-level writers too, for when sys.stdout is not descriptor 1 (an embedding host, pytest)
            self._py_streams = (sys.stdout, sys.stderr)
            sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning  # the documented hook for where warnings go
        _ACTIVE = self
        where = "every library message is shown (--verbose)" if self.verbose else f"full log: {self.log_path}"
        self.line(f"{self.command}: {where}")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        global _ACTIVE
        _ACTIVE = None
        warnings.showwarning = self._showwarning
        if exc is not None and not self.verbose:
            # the traceback goes to the log in full; the caller prints the error's one line
            print("".join(traceback.format_exception(exc_type, exc, tb)), file=sys.stderr, flush=True)
        sys.stdout.flush()
        sys.stderr.flush()
        if self._py_streams:
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = self._py_streams
            self._py_streams = ()
        if self._saved:
            os.dup2(self._saved[0], 1)
            os.dup2(self._saved[1], 2)
            for fd in self._saved:
                os.close(fd)
            self._saved = []
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
        if exc is not None and not self.verbose and not isinstance(exc, KeyboardInterrupt):
            self.line(f"{self.command}: failed; the full log is {self.log_path}")
        if self._own_stream:
            self._stream.close()

    # -------------------------------------------------------------------- output
    def line(self, text: str) -> None:
        """One line on the terminal (and, when redirected, in the log)."""
        with self._lock:
            self._stream.write(("\r\x1b[K" if self._live else "") + text + "\n")
            self._stream.flush()
            self.lines_written += 1
        if not self.verbose and self._saved:
            print(f"[console] {text}", flush=True)

    def _redraw(self, text: str) -> None:
        with self._lock:
            self._stream.write("\r\x1b[K" + text)
            self._stream.flush()

    def warn(self, message: str) -> None:
        self.line(f"warning: {message}")

    def _show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        print(text, file=sys.stderr, end="", flush=True)  # the log (or the terminal with --verbose)
        if not self.verbose and _is_ours(filename):
            self.warn(str(message))

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns - 1
        except (OSError, ValueError, AttributeError):
            return 100

    # -------------------------------------------------------------------- labels
    def label(self, what: str) -> str:
        parts = list(self._stages) + ([self._round] if self._round else []) + [what]
        return " · ".join(parts)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._stages.append(name)
        saved_round, self._round = self._round, None
        try:
            yield
        finally:
            self._stages.pop()
            self._round = saved_round

    def set_round(self, index: int, total: int | None = None) -> None:
        if index == 0:
            self._round = "start"
        else:
            self._round = f"round {index}" + (f"/{total}" if total else "")

    @contextmanager
    def step(
        self,
        what: str,
        progress: Progress | None = None,
        total: int | None = None,
        unit: str = "it",
        log: str | Path | None = None,
    ) -> Iterator[None]:
        label = self.label(what)
        start = time.monotonic()
        state = {"done": 0, "total": total, "current": None}

        def poll() -> None:
            if progress is not None:
                try:
                    state["done"], found_total, state["current"] = progress()
                    state["total"] = found_total or total
                except Exception:  # noqa: BLE001 - a progress probe must never break the step
                    pass

        stop = threading.Event()

        def watch() -> None:
            last_beat = time.monotonic()
            while not stop.wait(REDRAW_S):
                poll()
                elapsed = time.monotonic() - start
                text = progress_text(label, state["done"], state["total"], elapsed, self._width(), unit)
                if self._live:
                    self._redraw(text)
                elif time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    self.line(text + "  (running)")

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        except BaseException as exc:
            stop.set()
            thread.join()
            poll()
            where = f" while on {state['current']!r}" if state["current"] else ""
            logs = f"; log: {log}" if log else ""
            spent = _fmt_s(time.monotonic() - start)
            if isinstance(exc, KeyboardInterrupt):  # the user's Ctrl-C, not a failure
                self.line(f"STOPPED {label}{where} after {spent}")
            else:
                self.line(f"FAILED {label}{where} after {spent}{logs} ({type(exc).__name__})")
            raise
        stop.set()
        thread.join()
        poll()
        if total is not None and progress is None:
            state["done"] = total
        text = progress_text(label, state["done"], state["total"], time.monotonic() - start, self._width(), unit)
        self.line(text.split("<")[0] if state["total"] else text)  # a finished step has no ETA


def _is_ours(filename: str) -> bool:
    package = str(Path(__file__).resolve().parents[1])
    return str(Path(filename).resolve()).startswith(package)


# ------------------------------------------------------------------------ module-level helpers
def active() -> RunConsole | None:
    """The console of the running command, or ``None`` (library use, tests)."""
    return _ACTIVE


@contextmanager
def step(
    what: str,
    progress: Progress | None = None,
    total: int | None = None,
    unit: str = "it",
    log: str | Path | None = None,
) -> Iterator[None]:
    """Mark a step of the running command (no-op without an active console)."""
    console = _ACTIVE
    if console is None:
        yield
        return
    with console.step(what, progress, total, unit, log):
        yield


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Prefix the steps inside with ``name`` (no-op without an active console)."""
    console = _ACTIVE
    if console is None:
        yield
        return
    with console.stage(name):
        yield


def set_round(index: int, total: int | None = None) -> None:
    if _ACTIVE is not None:
        _ACTIVE.set_round(index, total)


def step_done_earlier(what: str) -> None:
    """One line for a step a rerun skips because its output exists."""
    if _ACTIVE is not None:
        _ACTIVE.line(f"{_ACTIVE.label(what)}  done earlier (kept)")


def warn(message: str) -> None:
    """A warning that matters: on the terminal with an active console, else a Python warning."""
    if _ACTIVE is not None:
        _ACTIVE.warn(message)
    else:
        warnings.warn(message, stacklevel=2)


def add_console_arguments(parser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show every LLaMA-Factory / transformers message on the terminal "
        "(default: they go to the run's logs/ folder)",
    )


def run_console(log_path: str | Path, args: Any, command: str) -> RunConsole:
    """The console a subcommand's ``run(args)`` opens (``--verbose`` / ``--no-progress`` read from ``args``)."""
    return RunConsole(
        log_path,
        verbose=bool(getattr(args, "verbose", False)),
        progress=not getattr(args, "no_progress", False),
        command=command,
    )


def print_summary(report_md: str, rows: list[dict[str, Any]], where: str) -> None:
    """The report's title and notes, where the files are, and last the stage table."""
    from vs2_plugin.pipeline.report import markdown_table

    lines = report_md.splitlines()
    print(lines[0])
    for line in lines:
        if line.startswith("- "):
            print(line)
    print(where)
    print()
    print(markdown_table(rows))


def tee_lines(source, sinks: list[TextIO], on_line: Callable[[str], None] | None = None) -> None:
    """Copy a child's text output line by line to every sink (flushing each line)."""
    for text in iter(source.readline, ""):
        for sink in sinks:
            sink.write(text)
            sink.flush()
        if on_line is not None:
            on_line(text)
