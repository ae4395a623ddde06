"""What LLaMA-Factory's API server (``llamafactory-cli api``) answers for a request our plugin
cannot serve: a video it cannot read is the client's error (HTTP 400 naming it), not the
server's (500 with a traceback). Nothing of LLaMA-Factory is touched: fastapi answers any
``HTTPException`` with its status, and our plugin's methods raise one (:func:`answers_bad_media_with_400`).
"""

from __future__ import annotations


def answers_bad_media_with_400(method):
    """Our multimodal plugin's methods that read a request's media (those LLaMA-Factory's chat
    engine calls, ``chat/hf_engine.py``): a MediaError / DataError leaves them as :func:`bad_request`.

    LLaMA-Factory's API catches nothing around its chat engine (``api/chat.py``,
    ``create_chat_completion_response``), so any exception there is Starlette's 500 with a
    traceback, except fastapi's ``HTTPException``, answered with its status and ``detail``: an
    unreadable video is then a 400 naming it and what is wrong with it (an upload as "uploaded file
    (N bytes)", not by the server's copy of it). Elsewhere (training,
    ``vs2 caption``) the error is the MediaError / DataError it was, with the same message.
    A streamed reply (``"stream": true``) has sent its 200 before the media are read, so there the
    stream breaks off instead."""
    import functools

    from vs2_plugin.data import spool
    from vs2_plugin.errors import DataError, MediaError

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (MediaError, DataError) as exc:
            uploaded = spool.uploaded_name(exc.path) if isinstance(exc, MediaError) else None
            bad = bad_request(MediaError(uploaded, exc.problem) if uploaded else exc)
            if bad is exc:
                raise
            raise bad from exc

    return wrapper


def bad_request(error: Exception) -> Exception:
    """``error`` as an instance of a subclass of its own class and fastapi's ``HTTPException`` 400,
    whose detail is its message: fastapi answers it with a 400 naming what is wrong, and every
    ``except`` of its own class still catches it (same message, same attributes). Without fastapi
    (no API server can run) it is ``error`` itself."""
    try:
        from fastapi import HTTPException
    except ImportError:
        return error
    if isinstance(error, HTTPException):  # a nested call's, already one
        return error
    cls = _bad_request_class(type(error))
    bad = cls.__new__(cls)
    bad.args = error.args
    vars(bad).update(vars(error))
    HTTPException.__init__(bad, status_code=400, detail=str(error))
    return bad


_BAD_REQUEST_CLASSES: dict[type, type] = {}


def _bad_request_class(base: type) -> type:
    from fastapi import HTTPException

    if base not in _BAD_REQUEST_CLASSES:
        _BAD_REQUEST_CLASSES[base] = type(
            f"{base.__name__}BadRequest",
            (base, HTTPException),
            # its message as its own class words it (HTTPException's would be "400: ...")
            {"__str__": Exception.__str__, "__repr__": Exception.__repr__, "__module__": __name__},
        )
    return _BAD_REQUEST_CLASSES[base]
