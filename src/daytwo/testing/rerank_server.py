"""A scripted reranker server on loopback speaking the TEI ``POST /rerank`` protocol.

For tests of the reranking stage (:mod:`daytwo.knowledge.rerank`), yours and ours: it is
not a cross-encoder. Its scores come from ``scorer(query, text)``, by default the share
of the query's words found in the passage (a lexical stand-in, deterministic), or from
``scores`` given per passage text. Requests are recorded in :attr:`requests`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedRerankServer", "word_overlap"]

_WORD = re.compile(r"\w+")


def word_overlap(query: str, text: str) -> float:
    """The share of the query's distinct words that occur in ``text``."""
    words = set(_WORD.findall(query.lower()))
    if not words:
        return 0.0
    return len(words & set(_WORD.findall(text.lower()))) / len(words)


class ScriptedRerankServer:
    """``POST /rerank`` ``{"query", "texts"}`` → ``[{"index", "score"}]`` best first.

    Like TEI, it refuses more than ``max_batch`` texts (its ``--max-client-batch-size``,
    32 by default) with a 422 validation error."""

    def __init__(
        self,
        scorer: Callable[[str, str], float] = word_overlap,
        *,
        scores: Mapping[str, float] | None = None,
        status: int = 200,
        max_batch: int = 32,
    ) -> None:
        self._scorer = scorer
        self.max_batch = max_batch
        self._scores = dict(scores or {})
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> ScriptedRerankServer:
        """Listen on a free loopback port (``url``)."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = server._answer(self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def _answer(self, path: str, raw: bytes) -> tuple[int, Any]:
        if path.rstrip("/") != "/rerank":
            return 404, {"error": "not found"}
        try:
            request = json.loads(raw)
            query, texts = str(request["query"]), [str(t) for t in request["texts"]]
        except (ValueError, KeyError, TypeError):
            return 422, {"error": "expected {query, texts}"}
        with self._lock:
            self.requests.append(request)
        if self.status != 200:
            return self.status, {"error": "scripted failure"}
        if len(texts) > self.max_batch:
            return 422, {
                "error": f"batch size {len(texts)} > maximum allowed batch size {self.max_batch}",
                "error_type": "Validation",
            }
        scored = [(i, self._scores.get(t, self._scorer(query, t))) for i, t in enumerate(texts)]
        scored.sort(key=lambda p: -p[1])
        return 200, [{"index": i, "score": s} for i, s in scored]

    def stop(self) -> None:
        """Stop listening."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ScriptedRerankServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
