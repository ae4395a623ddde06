"""A scripted OpenAI chat-completions server on 127.0.0.1 for tests and benchmarks.

    with FakeOpenAIServer(latency_s=0.1) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url      # http://127.0.0.1:PORT/v1
        server.script.extend([Action.error(429, retry_after="0.2"), Action.malformed()])
        ...
        assert server.count == 3

Faults: ``Action.error`` (HTTP status, optional ``Retry-After`` and a message that quotes the
request's ``Authorization`` header), ``hang`` (timeout), ``reset`` (connection dropped before
an answer), ``cut`` (socket closed half-way through the body), ``raw`` (any HTTP body, e.g. an
HTML page), ``refusal`` (``content: null`` + ``refusal``) and ``malformed`` / ``ok(text)`` for
answers that are not the JSON asked for.

Each request is answered by, in order of precedence: the next :class:`Action` of
``server.script`` (consumed first-in first-out), ``server.rule(body)`` if it returns an
Action, else ``Action.ok(server.responder(body))``. The default responder plays a simple
judge that understands vs2_openai_judge's prompts (words-overlap coverage, sentence events),
so answers are valid JSON unless a test scripts otherwise. Every request body is recorded in
``server.requests``. Only loopback is used; the server stops with the ``with`` block.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Action:
    kind: str  # ok | status | hang | reset | cut | raw | refusal | malformed
    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    echo_auth: bool = False

    @classmethod
    def ok(cls, content: str) -> "Action":
        return cls("ok", content=content)

    @classmethod
    def error(
        cls, status: int, retry_after: str | None = None, headers: dict[str, str] | None = None, echo_auth: bool = False
    ) -> "Action":
        """An HTTP error answer (429, 500, ...), with ``Retry-After`` when given.

        ``echo_auth``: the error message quotes the request's ``Authorization`` header, as some
        gateways do on a 401 (the client must not pass it on).
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = retry_after
        return cls("status", status=status, headers=extra, echo_auth=echo_auth)

    @classmethod
    def hang(cls, seconds: float) -> "Action":
        """Answer only after ``seconds`` (longer than the client timeout -> a timeout)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> "Action":
        """Drop the connection without answering (TCP reset)."""
        return cls("reset")

    @classmethod
    def cut(cls) -> "Action":
        """Send the status line, headers and half of a valid answer body, then close the socket."""
        return cls("cut")

    @classmethod
    def raw(cls, body: str, status: int = 200, content_type: str = "application/json") -> "Action":
        """Answer with ``body`` verbatim as the HTTP body (e.g. not JSON at all)."""
        return cls("raw", content=body, status=status, headers={"Content-Type": content_type})

    @classmethod
    def refusal(cls, text: str = "I can't help with that.") -> "Action":
        """A refusal as structured-output models send it: ``content`` null, ``refusal`` set."""
        return cls("refusal", content=text)

    @classmethod
    def malformed(cls, text: str = "Sure! Here is my evaluation: missed events 1 and 2") -> "Action":
        return cls("malformed", content=text)


_WORD = re.compile(r"[a-z0-9']+")
_STOP = set(
    "a an the of in on at to and or is are was were be with by for from as that this it its their his her".split()
)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def rule_based_answer(body: dict) -> str:
    """A deterministic stand-in judge for vs2_openai_judge's two prompts."""
    user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    if user.startswith("Reference events:"):
        events_part, _, caption = user.partition("\n\nCaption to evaluate:\n")
        events = [re.sub(r"^\d+\.\s*", "", ln) for ln in events_part.splitlines()[1:] if ln.strip()]
        cap = set(_content_words(caption))
        missed = []
        for i, event in enumerate(events, start=1):
            words = _content_words(event)
            if words and sum(w in cap for w in words) / len(words) < 0.5:
                missed.append(i)
        return json.dumps({"missed": missed, "incorrect": [], "hallucinated": []})
    text = user.split("\n", 1)[1] if "\n" in user else user
    events = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return json.dumps({"events": events or [text.strip() or "nothing"]})


class FakeOpenAIServer:
    def __init__(
        self,
        responder: Callable[[dict], str] | None = None,
        latency_s: float = 0.0,
        rule: Callable[[dict], Action | None] | None = None,
    ):
        self.responder = responder or rule_based_answer
        self.rule = rule
        self.latency_s = latency_s
        self.script: list[Action] = []
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request, in order
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FakeOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # headers and body leave in one write (flushed after each answer)

            def log_message(self, *args):  # keep test output clean
                pass

            def setup(self):
                super().setup()
                # answer in one segment: without this, Nagle + delayed ACK add ~40 ms per request
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = {}
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                action = server._next_action(body, self.headers.get("Authorization", ""))
                if server.latency_s:
                    time.sleep(server.latency_s)
                if action.kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if action.kind == "hang":
                    time.sleep(action.seconds)
                if action.kind == "status":
                    message = {
                        401: "Incorrect API key provided",
                        429: "Rate limit reached",
                        500: "Internal server error",
                        503: "Overloaded",
                    }.get(action.status, "error")
                    if action.echo_auth:
                        message += f" (got {self.headers.get('Authorization', '')!r})"
                    return self._send(
                        action.status,
                        {"error": {"message": message, "type": "server_error", "code": action.status}},
                        action.headers,
                    )
                if action.kind == "raw":
                    return self._send(action.status, action.content.encode(), action.headers)
                words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                if action.kind == "refusal":
                    message, content = {"role": "assistant", "content": None, "refusal": action.content}, ""
                else:
                    content = action.content if action.content is not None else server.responder(body)
                    message = {"role": "assistant", "content": content}
                payload = {
                    "id": f"chatcmpl-fake{len(server.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {
                        "prompt_tokens": words,
                        "completion_tokens": len(content.split()),
                        "total_tokens": words + len(content.split()),
                    },
                }
                if action.kind == "cut":
                    data = json.dumps(payload).encode()
                    try:  # announce the whole body, send half of it, then hang up
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                return self._send(200, payload)

            def _send(self, status, payload, headers=None):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                headers = dict(headers or {})
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 256
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ state
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.auth_headers.clear()
            self.arrivals.clear()

    def _next_action(self, body: dict, auth: str) -> Action:
        with self._lock:
            self.requests.append(body)
            self.auth_headers.append(auth)
            self.arrivals.append(time.monotonic())
            if self.script:
                return self.script.pop(0)
        if self.rule is not None:
            action = self.rule(body)
            if action is not None:
                return action
        return Action("ok")


def serve_with_env(monkeypatch, key: str, **kwargs):
    """A started :class:`FakeOpenAIServer` with ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` pointing at it
    (a generator for pytest fixtures: ``yield from serve_with_env(monkeypatch, KEY)``)."""
    with FakeOpenAIServer(**kwargs) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", key)
        yield srv
