"""A scripted OpenAI chat-completions server on 127.0.0.1 for tests and benchmarks.

    with FakeOpenAIServer(latency_s=0.1) as server:
        os.environ["OPENAI_BASE_URL"] = server.base_url      # http://127.0.0.1:PORT/v1
        server.script.extend([Action.error(429, retry_after="0.2"), Action.malformed()])
        ...
        assert server.count == 3

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
    kind: str  # ok | status | hang | reset | malformed
    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def ok(cls, content: str) -> "Action":
        return cls("ok", content=content)

    @classmethod
    def error(cls, status: int, retry_after: str | None = None) -> "Action":
        """An HTTP error answer (429, 500, ...), with ``Retry-After`` when given."""
        return cls("status", status=status, headers={"Retry-After": retry_after} if retry_after is not None else {})

    @classmethod
    def hang(cls, seconds: float) -> "Action":
        """Answer only after ``seconds`` (longer than the client timeout -> a timeout)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> "Action":
        """Drop the connection without answering (TCP reset)."""
        return cls("reset")

    @classmethod
    def malformed(cls, text: str = "Sure! Here is my evaluation: missed events 1 and 2") -> "Action":
        return cls("malformed", content=text)


_WORD = re.compile(r"[a-z0-9']+")
_STOP = set("a an the of in on at to and or is are was were be with by for from as that this it its their his her".split())


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
    def __init__(self, responder: Callable[[dict], str] | None = None, latency_s: float = 0.0,
                 rule: Callable[[dict], Action | None] | None = None):
        self.responder = responder or rule_based_answer
        self.rule = rule
        self.latency_s = latency_s
        self.script: list[Action] = []
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
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
                    message = {429: "Rate limit reached", 500: "Internal server error", 503: "Overloaded"}.get(action.status, "error")
                    return self._send(action.status, {"error": {"message": message, "type": "server_error", "code": action.status}}, action.headers)
                content = action.content if action.content is not None else server.responder(body)
                words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                return self._send(200, {
                    "id": f"chatcmpl-fake{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": words, "completion_tokens": len(content.split()), "total_tokens": words + len(content.split())},
                })

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
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

    def _next_action(self, body: dict, auth: str) -> Action:
        with self._lock:
            self.requests.append(body)
            self.auth_headers.append(auth)
            if self.script:
                return self.script.pop(0)
        if self.rule is not None:
            action = self.rule(body)
            if action is not None:
                return action
        return Action("ok")
