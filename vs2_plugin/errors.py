"""Errors users are meant to read: one line, naming the file or sample and the problem (and the
close-match hint their messages share, :func:`did_you_mean`)."""


class Vs2Error(Exception):
    """Base class; the CLI prints these as one line without a traceback."""


class MediaError(Vs2Error):
    """A media file is missing, unreadable, or unsuitable (too short, no stream, ...)."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DataError(Vs2Error):
    """A dataset row or caption is malformed."""


class ConfigError(Vs2Error, ValueError):
    """A configuration value is invalid (the message names the key and the value)."""


class UnsupportedLlamaFactory(Vs2Error, RuntimeError):
    """The installed LLaMA-Factory version is not one vs2_plugin supports."""


def did_you_mean(key: str, known) -> str:
    """`` (did you mean a, b?)`` naming the keys of ``known`` close to ``key``, or nothing."""
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75)
    return f" (did you mean {', '.join(close)}?)" if close else ""
