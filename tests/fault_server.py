"""A real HTTP inference server on 127.0.0.1 for tests, with faults injected on demand.

It speaks the Hugging Face Inference API shape (``POST /models/<name>``) and the OpenAI shapes
(``POST /v1/completions``, ``POST /v1/chat/completions``, streaming as server-sent events). Answers are
deterministic: the words of the input reversed, word by word (``"a b c"`` → ``"c b a"``), cut to
``max_tokens`` words (one word = one "token").

Faults are scripted per prompt (any request whose input text contains a marker) or per request number
(1-based, over all requests), as a list consumed one entry per matching request; when the list is used
up, the request is answered normally (``repeat=True`` keeps the last fault forever)::

    server.script("boom", ["500", "500"])            # two 500s, then an answer
    server.script("busy", [("429", 0.2)])            # 429 with Retry-After: 0.2
    server.script("load", [("503-loading", 0.1)])    # 503 {"error": ".. is currently loading", "estimated_time": 0.1}
    server.script("slow", [("slow", 2.0)])           # answer only after 2 s
    server.script("junk", ["malformed"])             # 200 with a body that is not JSON
    server.script("drop", ["drop"])                  # close the connection without an answer
    server.script("echo", ["500-echo-auth"], repeat=True)  # 500 whose body echoes the Authorization header
    server.script("", ["501"], repeat=True)          # every request: 501 (any status by its number)
    server.script_request(3, "500")                  # the 3rd request overall gets a 500

Every request is recorded (``server.requests``: path, JSON body, Authorization header, the time it came),
and ``server.max_in_flight`` tracks the most requests handled at once (``delay_s`` holds each answer a
little so that concurrency shows).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


OPENAI_FIELDS = {
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "user",
}


@dataclass
class Hit:
    path: str
    body: Any
    authorization: str | None
    text: str
    time: float
    number: int
    fault: Any = None


@dataclass
class _Script:
    faults: list[Any]
    repeat: bool = False
    used: int = 0

    def next(self) -> Any:
        if self.used < len(self.faults):
            fault = self.faults[self.used]
            self.used += 1
            return fault
        if self.repeat and self.faults:
            return self.faults[-1]
        return None


def answer_for(
    text: str, max_tokens: int, stop: list[str] | None = None, keep_stop: bool = False
) -> tuple[str, str, int, str | None]:
    """(answer, finish_reason, completion_tokens, matched stop string) for an input text: its words reversed.

    Like vLLM, the OpenAI paths cut the stop string off; like TGI, the HF path keeps it (``keep_stop``).
    """
    words = text.split()[::-1]
    finish = "stop"
    if len(words) > max_tokens:
        words = words[:max_tokens]
        finish = "length"
    answer = " ".join(words)
    matched = None
    for s in stop or []:
        if s and s in answer:
            answer = answer[: answer.index(s) + (len(s) if keep_stop else 0)]
            finish, matched = "stop", s
            break
    return answer, finish, len(answer.split()), matched


class FaultServer:
    def __init__(
        self,
        delay_s: float = 0.0,
        reject_stream: bool = False,
        strict_params: bool = False,
        model_path: str = "/models/test-model",
        responder: Any = None,
    ):
        self.delay_s = delay_s
        self.responder = responder  # (body, text) -> answer or None: replaces the reversed words on the OpenAI paths
        self.reject_stream = reject_stream
        self.strict_params = strict_params  # reject fields the OpenAI API does not know, as OpenAI does
        self.model_path = model_path
        self.requests: list[Hit] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._by_text: dict[str, _Script] = {}
        self._by_number: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------
    def script(self, marker: str, faults: list[Any], repeat: bool = False) -> None:
        with self._lock:
            self._by_text[marker] = _Script(list(faults), repeat)

    def script_request(self, number: int, fault: Any) -> None:
        with self._lock:
            self._by_number[number] = fault

    def hits(self, marker: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.requests if marker in h.text]

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hf_url(self) -> str:
        return self.url + self.model_path

    def start(self) -> "FaultServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- used by the handler ---------------------------------------------------------------
    def _record(self, path: str, body: Any, authorization: str | None, text: str) -> Hit:
        with self._lock:
            number = len(self.requests) + 1
            fault = self._by_number.pop(number, None)
            if fault is None:
                for marker, script in self._by_text.items():
                    if marker in text:
                        fault = script.next()
                        break
            hit = Hit(path, body, authorization, text, time.monotonic(), number, fault)
            self.requests.append(hit)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return hit

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- responses -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes | str | Any, headers: dict[str, str] | None = None) -> None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_sse(self, events: list[Any], gap_s: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in [*events, "[DONE]"]:
            data = event if isinstance(event, str) else json.dumps(event)
            chunk = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            if gap_s:
                self.owner._sleep(gap_s)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"error": "request body is not JSON"})
            return
        path = self.path.rstrip("/")
        if path.endswith("/chat/completions"):
            kind = "chat"
            users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
            text = users[-1] if users else ""
        elif path.endswith("/completions"):
            kind = "completions"
            text = body.get("prompt", "")
        elif path == self.owner.model_path:
            kind = "hf"
            text = body.get("inputs", "")
        else:
            self._send(404, {"error": f"no route {path}"})
            return
        hit = self.owner._record(path, body, self.headers.get("Authorization"), text)
        try:
            self._answer(kind, body, text, hit)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.owner._done()

    def _answer(self, kind: str, body: dict, text: str, hit: Hit) -> None:
        owner = self.owner
        if owner.delay_s:
            owner._sleep(owner.delay_s)
        fault = hit.fault
        name, arg = (fault if isinstance(fault, tuple) else (fault, None)) if fault else (None, None)
        if name == "500":
            self._send(500, {"error": "internal server error"})
            return
        if name == "500-echo-auth":
            self._send(500, f"upstream rejected request with header Authorization: {hit.authorization}")
            return
        if name == "401":
            self._send(401, {"error": "Authorization header is correct, but the token seems invalid"})
            return
        if name == "429":
            self._send(429, {"error": "rate limited"}, {"Retry-After": str(arg if arg is not None else 1)})
            return
        if name == "503-loading":
            self._send(503, {"error": "Model test-model is currently loading", "estimated_time": arg if arg is not None else 1.0})
            return
        if isinstance(name, str) and name.isdigit():  # any other status: "501", "404", "503", ...
            self._send(int(name), {"error": {"message": f"status {name} from the test server", "type": "test"}})
            return
        if name == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if name == "malformed":
            self._send(200, b'{"generated_text": "half an answ')
            return
        if name == "slow":
            owner._sleep(arg if arg is not None else 5.0)
            if owner._stopping.is_set():
                return
        if kind == "hf":
            params = body.get("parameters") or {}
            answer, finish, n, _ = answer_for(text, int(params.get("max_new_tokens", 20)), params.get("stop"), keep_stop=True)
            self._send(200, [{"generated_text": answer}])
            return
        unknown = sorted(set(body) - OPENAI_FIELDS)
        if owner.strict_params and unknown:
            message = f"Unrecognized request argument supplied: {unknown[0]}"
            self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        stream = bool(body.get("stream"))
        if stream and owner.reject_stream:
            self._send(400, {"error": {"message": "streaming is not supported", "type": "invalid_request_error"}})
            return
        answer, finish, n, matched = answer_for(text, int(body.get("max_tokens", 16)), body.get("stop"))
        custom = owner.responder(body, text) if owner.responder is not None else None
        if custom is not None:
            answer, finish, n, matched = custom, "stop", len(custom.split()), None
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": n, "total_tokens": len(text.split()) + n}
        obj = "chat.completion" if kind == "chat" else "text_completion"
        if not stream:
            if kind == "chat":
                choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": answer, "finish_reason": finish}
            if matched is not None:
                choice["stop_reason"] = matched
            self._send(
                200, {"id": f"x{hit.number}", "object": obj, "model": body.get("model"), "choices": [choice], "usage": usage}
            )
            return
        pieces = [answer[i : i + 2] for i in range(0, len(answer), 2)]  # 2-character "tokens", spaces kept
        events: list[Any] = []
        if kind == "chat":
            events.append(
                {
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
                }
            )
        for piece in pieces:
            delta = {"delta": {"content": piece}} if kind == "chat" else {"text": piece}
            events.append({"object": obj + ".chunk", "choices": [{"index": 0, **delta, "finish_reason": None}]})
        last = {"delta": {}} if kind == "chat" else {"text": ""}
        final = {"index": 0, **last, "finish_reason": finish, **({"stop_reason": matched} if matched else {})}
        events.append({"object": obj + ".chunk", "choices": [final]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"object": obj + ".chunk", "choices": [], "usage": usage})
        self._send_sse(events)
