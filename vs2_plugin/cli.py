"""``vs2`` command line. Each subcommand lives in its own module, imported only when used.

A subcommand module exposes ``configure_parser(parser)`` and ``run(args) -> int`` (and
``INTERMIXED = True`` when its flags may come after its positional arguments).
Expected failures raise :class:`vs2_plugin.errors.Vs2Error`; they are printed as one line
(no traceback) and exit with status 2; any other exception prints its traceback with API
keys redacted and exits with status 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings

from vs2_plugin import __version__

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "plugins": ("vs2_plugin.commands.plugins", "list discovered plugins and LLaMA-Factory registrations"),
    "build-tiny": ("vs2_plugin.commands.build_tiny", "build a tiny random model directory offline"),
    "build": ("vs2_plugin.commands.build", "compose a Qwen2.5-VL + Whisper checkpoint into one model"),
    "tokens": ("vs2_plugin.commands.tokens", "show how a media file is fed to the model (JSON)"),
    "eval": ("vs2_plugin.commands.eval", "judge captions against atomic events; Table-1 style report"),
    "pairs": ("vs2_plugin.commands.pairs", "build a pairwise DPO dataset from judged samples"),
    "mrdpo": ("vs2_plugin.commands.mrdpo", "run the multi-round DPO driver from a YAML config"),
    "rebirth": ("vs2_plugin.commands.rebirth", "rebirth tuning: relabel videos, filter, SFT from alignment"),
    "demo": ("vs2_plugin.commands.demo", "the whole pipeline on the tiny model and synthetic clips"),
    "caption": ("vs2_plugin.commands.caption", "caption videos with a trained model or run, in batches (JSONL)"),
    "export": (
        "vs2_plugin.commands.export",
        "merge a model and its LoRA adapters (or a run's final model) into one checkpoint",
    ),
    "synth": ("vs2_plugin.commands.synth", "synthetic audio-visual clips with exact events, captions and datasets"),
    "check-recipe": (
        "vs2_plugin.commands.check_recipe",
        "check a recipe's keys, types and files before a run (training, inference, mrDPO)",
    ),
    "synth-encoders": (
        "vs2_plugin.commands.synth_encoders",
        "pretrain a tiny model's vision and audio encoders on synthetic clips",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vs2", description="video-SALMONN 2 for LLaMA-Factory")
    parser.add_argument("--version", action="version", version=f"vs2_plugin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as one line: the user of a command reads what is wrong (a deprecated flag, a
    plugin skipped), not the source line that noticed it."""
    return f"{category.__name__}: {message}\n"


def main(argv: list[str] | None = None) -> int:
    previous, warnings.formatwarning = warnings.formatwarning, _warning_line  # the documented hook
    try:
        return _main(argv)
    finally:  # a program that calls main() keeps its own warning format
        warnings.formatwarning = previous


#: errors of a path the user gave or can mend (the others keep their traceback: they may be bugs)
_PATH_ERRNOS = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EROFS, errno.ENOSPC}
)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        build_parser().parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    # the subcommand module's docstring (input formats, outputs) is the help text's epilog
    parser = argparse.ArgumentParser(
        prog=f"vs2 {name}",
        description=help_text,
        epilog=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure_parser(parser)
    # a command with key=value overrides takes its flags before or after them
    args = parser.parse_intermixed_args(rest) if getattr(module, "INTERMIXED", False) else parser.parse_args(rest)
    from vs2_plugin.errors import Vs2Error
    from vs2_plugin.secrets import redact

    try:
        return int(module.run(args) or 0)
    except Vs2Error as exc:
        print(f"vs2 {name}: error: {redact(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of stdout left (vs2 plugins | head): nothing to say, and nowhere to say it;
        # stdout is pointed at devnull so that Python's flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        # a command that keeps nothing partial says so in its module's INTERRUPTED
        note = getattr(module, "INTERRUPTED", "completed work is kept and a rerun resumes")
        print(f"vs2 {name}: interrupted; {note}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or an unexpected library error: traceback with API keys redacted
        if isinstance(exc, OSError) and exc.filename is not None and exc.errno in _PATH_ERRNOS:
            # a folder that cannot be made, a file in the way, no permission, a full disk: the path and why
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            print(f"vs2 {name}: error: {redact(f'{where}: {exc.strerror or exc}')}", file=sys.stderr)
            return 2
        import traceback

        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
