"""Opt-in int8 dynamic quantisation of MiniLM's feed-forward MatMuls.

The shipped ONNX stores int8 weights that a Cast and a Mul turn into float32 when
onnxruntime folds constants, so the default embedder computes in float32. This builds,
once, a graph whose 12 feed-forward MatMuls (intermediate and output dense, two thirds of
the model's multiply-adds) run as ``DynamicQuantizeMatMul``: activations quantised per
batch to uint8, weights int8 per output channel (AVX512-VNNI on this CPU). Attention
stays float32. It changes the vectors (cosine ~0.996 to the float ones), so it is a
separate embedder with its own name and version, never the default.

The graph is made locally from the shipped model, never downloaded: onnxruntime folds the
constants (basic level) into a temporary file, ``onnxruntime.quantization`` quantises it,
and the result is cached next to the model file (or in the user cache directory when that
is not writable) under a name keyed by the source file's hash, onnxruntime's version and
:data:`RECIPE`, written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from daytwo.exceptions import ConfigError, ModelError

__all__ = ["RECIPE", "quantised_model"]

RECIPE = "ffn-dynamic-q8-per-channel-1"
"""What the cached graph is; a change of recipe makes a new cache entry."""

_FFN_BIASES = (".intermediate.dense.bias", ".output.dense.bias")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _cache_dirs(source: Path) -> list[Path]:
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [source.parent, home_cache / "daytwo" / "models"]


def _ffn_matmuls(model: Any) -> list[str]:
    """Names of the MatMuls whose output gets a feed-forward bias (not attention's)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names = []
    for node in model.graph.node:
        if node.op_type != "Add":
            continue
        for bias in node.input:
            if bias.endswith(_FFN_BIASES) and ".attention." not in bias:
                (other,) = [i for i in node.input if i != bias]
                matmul = producer.get(other)
                if matmul is not None and matmul.op_type == "MatMul":
                    names.append(matmul.name)
    return names


def _build(source: Path, target: Path) -> None:
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(
            "the quantised MiniLM embedder needs the onnx package",
            hint="pip install 'daytwo[local]' (or pip install onnx)",
        ) from exc
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        names = _ffn_matmuls(onnx.load(str(folded)))
        if not names:
            raise ModelError(f"no feed-forward MatMul found in {source}: cannot quantise it")
        quantised = Path(tmp) / "quantised.onnx"
        quantize_dynamic(
            folded,
            quantised,
            nodes_to_quantize=names,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
        os.close(fd)
        try:
            Path(partial).write_bytes(quantised.read_bytes())
            os.replace(partial, target)  # atomic: a reader sees the old state or the whole file
        finally:
            Path(partial).unlink(missing_ok=True)


def quantised_model(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cached quantised graph of ``source``, built on first use.

    Cached in ``cache_dir`` when given, else next to ``source`` or, when that directory is
    not writable, in ``$XDG_CACHE_HOME/daytwo/models`` (``~/.cache`` by default).
    """
    import onnxruntime as ort

    source = Path(source)
    name = f"{source.stem}.{_digest(source)}.ort-{ort.__version__}.{RECIPE}.onnx"
    dirs = [Path(cache_dir)] if cache_dir is not None else _cache_dirs(source)
    candidates = [d / name for d in dirs]
    for path in candidates:
        if path.exists():
            return path
    errors = []
    for path in candidates:
        try:
            _build(source, path)
            return path
        except OSError as exc:  # not writable: try the next place
            errors.append(f"{path.parent}: {exc}")
    raise ModelError("cannot cache the quantised MiniLM graph: " + "; ".join(errors))
