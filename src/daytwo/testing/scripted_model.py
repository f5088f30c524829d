"""A scripted OpenAI-compatible model server on loopback, for tests (yours and ours).

It speaks the same HTTP protocol as OpenAI, vLLM or llama.cpp
(``POST /v1/chat/completions`` with optional SSE streaming,
``POST /v1/embeddings``, ``GET /v1/models``), and the Anthropic Messages API
(``POST /v1/messages``, with SSE streaming, for the official ``anthropic`` SDK),
and replies from a script::

    script = [
        Reply(status=429, retry_after=0.1),          # rate limited once
        Reply(content='{"answer": 4'),                # malformed JSON
        Reply(tool_calls=[("lookup", {"sku": "A1"})]),
        Reply(content="done", delay=0.5),             # a slow reply
        Reply(content="Red", logprobs=[("Red", -0.1, [("Red", -0.1), ("Blue", -2.3)])]),
    ]
    with ScriptedModelServer(script) as server:
        provider = OpenAICompatProvider(server.base_url)

A ``responder`` callable can compute replies from the request instead.
Every request received is kept in ``server.requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["Reply", "ScriptedModelServer", "hashing_embedding"]


@dataclass
class Reply:
    """One scripted reply. ``body`` (raw text) overrides everything but status/headers."""

    content: str | None = None
    tool_calls: Sequence[tuple[str, dict[str, Any] | str]] = ()
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    body: str | None = None
    usage: dict[str, int] | None = None
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    logprobs: Sequence[tuple[str, float, Sequence[tuple[str, float]]]] | None = None
    """Per generated token: (token, logprob, top alternatives as (token, logprob))."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks (a slow model; lets a client leave mid-stream)."""


def hashing_embedding(text: str, dim: int = 384) -> list[float]:
    """A deterministic unit vector from hashed word unigrams (a real, if weak, embedder)."""
    vec = np.zeros(dim, dtype=np.float32)
    for word in text.lower().split():
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        idx = int.from_bytes(digest[:4], "little") % dim
        sign = 1.0 if digest[4] & 1 else -1.0
        vec[idx] += sign
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
        norm = 1.0
    return [float(x) for x in vec / norm]


Responder = Callable[[dict[str, Any]], "Reply | str"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many concurrent clients (the default backlog is 5)
    connections = 0
    """TCP connections accepted so far (a client that reuses one opens no other)."""

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1  # the serving thread accepts one at a time
        super().process_request(request, client_address)


class ScriptedModelServer:
    """OpenAI-compatible HTTP server on 127.0.0.1 answering from a script."""

    def __init__(
        self,
        script: Sequence[Reply | str] = (),
        *,
        responder: Responder | None = None,
        default: Reply | str | None = None,
        model: str = "scripted",
        embed: Callable[[str], list[float]] | None = None,
    ) -> None:
        self._script: list[Reply] = [_as_reply(r) for r in script]
        self._responder = responder
        self._default = _as_reply(default) if default is not None else None
        self.model = model
        self._embed = embed or hashing_embedding
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    @property
    def connections(self) -> int:
        """TCP connections accepted so far: a client that keeps its connection alive
        between requests (streams included) opens one."""
        return self._httpd.connections if isinstance(self._httpd, _Server) else 0

    def push(self, *replies: Reply | str) -> None:
        """Append replies to the script."""
        with self._lock:
            self._script.extend(_as_reply(r) for r in replies)

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.pop(0)
        if self._responder is not None:
            return _as_reply(self._responder(request))
        if self._default is not None:
            return self._default
        return Reply(status=500, body='{"error": {"message": "script exhausted"}}')

    def start(self) -> ScriptedModelServer:
        """Listen on a free loopback port."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY a
            # keep-alive client's delayed ACK stalls every reply by ~40 ms (Nagle).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _open_events(self) -> None:
                """Start an event stream as the vendors send it: HTTP/1.1 chunked, the
                connection kept for the client's next request."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _event(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

            def _close_events(self) -> None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    body = {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    self._send(200, json.dumps(body).encode(), {})
                else:
                    self._send(404, b'{"error": {"message": "not found"}}', {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    request = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "invalid JSON body"}}', {})
                    return
                if self.path.rstrip("/") == "/v1/embeddings":
                    self._embeddings(request)
                elif self.path.rstrip("/") == "/v1/chat/completions":
                    self._chat(request)
                elif self.path.rstrip("/") == "/v1/messages":
                    self._anthropic(request)
                else:
                    self._send(404, b'{"error": {"message": "not found"}}', {})

            def _embeddings(self, request: dict[str, Any]) -> None:
                inputs = request.get("input", [])
                if isinstance(inputs, str):
                    inputs = [inputs]
                with server._lock:
                    server.requests.append(request)
                data = [
                    {"object": "embedding", "index": i, "embedding": server._embed(str(t))}
                    for i, t in enumerate(inputs)
                ]
                tokens = sum(len(str(t).split()) for t in inputs)
                body = {
                    "object": "list",
                    "data": data,
                    "model": request.get("model", server.model),
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
                self._send(200, json.dumps(body).encode(), {})

            def _chat(self, request: dict[str, Any]) -> None:
                reply = server._next_reply(request)
                if reply.delay:
                    time.sleep(reply.delay)
                headers = dict(reply.headers)
                if reply.retry_after is not None:
                    headers["Retry-After"] = str(reply.retry_after)
                if reply.body is not None or reply.status != 200:
                    body = reply.body if reply.body is not None else '{"error": {"message": "x"}}'
                    self._send(reply.status, body.encode(), headers)
                    return
                message = _message(reply)
                usage = reply.usage or _usage(request, reply)
                if request.get("stream"):
                    self._stream(request, reply, usage)
                    return
                body_obj = {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model", server.model),
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": reply.finish_reason}
                    ],
                    "usage": usage,
                }
                if reply.logprobs is not None:
                    body_obj["choices"][0]["logprobs"] = {"content": _logprobs(reply)}
                self._send(200, json.dumps(body_obj).encode(), headers)

            def _anthropic(self, request: dict[str, Any]) -> None:
                reply = server._next_reply(request)
                if reply.delay:
                    time.sleep(reply.delay)
                headers = dict(reply.headers)
                if reply.retry_after is not None:
                    headers["retry-after"] = str(reply.retry_after)
                if reply.body is not None or reply.status != 200:
                    body = reply.body or json.dumps(
                        {"type": "error", "error": {"type": "api_error", "message": "scripted"}}
                    )
                    self._send(reply.status, body.encode(), headers)
                    return
                usage = reply.usage or _usage(request, reply)
                message = _anthropic_message(request, reply, usage, server.model)
                if request.get("stream"):
                    self._anthropic_stream(message)
                    return
                self._send(200, json.dumps(message).encode(), headers)

            def _anthropic_stream(self, message: dict[str, Any]) -> None:
                self._open_events()

                def event(name: str, data: dict[str, Any]) -> None:
                    payload = json.dumps({"type": name, **data})
                    self._event(f"event: {name}\ndata: {payload}\n\n".encode())

                start = {**message, "content": [], "stop_reason": None}
                event("message_start", {"message": start})
                for i, block in enumerate(message["content"]):
                    if block["type"] != "text":
                        continue
                    event(
                        "content_block_start",
                        {"index": i, "content_block": {"type": "text", "text": ""}},
                    )
                    text = block["text"]
                    for j in range(0, len(text), 8):
                        delta = {"type": "text_delta", "text": text[j : j + 8]}
                        event("content_block_delta", {"index": i, "delta": delta})
                    event("content_block_stop", {"index": i})
                event(
                    "message_delta",
                    {
                        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                        "usage": {"output_tokens": message["usage"]["output_tokens"]},
                    },
                )
                event("message_stop", {})
                self._close_events()

            def _stream(self, request: dict[str, Any], reply: Reply, usage: dict[str, int]) -> None:
                self._open_events()
                text = reply.content or ""
                pieces = [text[i : i + 8] for i in range(0, len(text), 8)] or [""]
                for piece in pieces:
                    chunk = {
                        "object": "chat.completion.chunk",
                        "model": request.get("model", server.model),
                        "choices": [{"index": 0, "delta": {"content": piece}}],
                    }
                    try:
                        self._event(f"data: {json.dumps(chunk)}\n\n".encode())
                        if reply.chunk_delay:
                            self.wfile.flush()
                            time.sleep(reply.chunk_delay)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True
                        return  # the client left mid-stream
                final: dict[str, Any] = {
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
                }
                if (request.get("stream_options") or {}).get("include_usage"):
                    final["usage"] = usage
                self._event(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
                if reply.chunk_delay:  # the end of the body comes after a pause too
                    self.wfile.flush()
                    time.sleep(reply.chunk_delay)
                self._close_events()

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host!s}:{port}/v1"
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _as_reply(reply: Reply | str) -> Reply:
    return Reply(content=reply) if isinstance(reply, str) else reply


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    return message


def _logprobs(reply: Reply) -> list[dict[str, Any]]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return [
        {**entry(tok, lp), "top_logprobs": [entry(t, p) for t, p in top]}
        for tok, lp, top in reply.logprobs or ()
    ]


_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _anthropic_message(
    request: dict[str, Any], reply: Reply, usage: dict[str, int], model: str
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.content is not None:
        content.append({"type": "text", "text": reply.content})
    for i, (name, args) in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{i}",
                "name": name,
                "input": json.loads(args) if isinstance(args, str) else args,
            }
        )
    stop = "tool_use" if reply.tool_calls else _STOP_REASONS.get(reply.finish_reason, "end_turn")
    return {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", model),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "cache_read_input_tokens": usage.get("cached_tokens", 0),
        },
    }


def _usage(request: dict[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) + 4 for m in request.get("messages", []))
    prompt += len(str(request.get("system") or "").split())
    completion = len((reply.content or "").split()) + 8 * len(reply.tool_calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
