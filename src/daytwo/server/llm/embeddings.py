"""``POST /v1/embeddings`` over daytwo's embedders (the knowledge layer's).

An embedding profile (``features.embeddings``) names a local embedder
(``local/minilm-l6-int8``, ``local/hashing-384``: the profile's ``model`` is the
embedder's name) or an OpenAI-compatible endpoint (the profile's ``base_url``).
The embedder emits the ``embeddings`` span; the gateway's attribution puts the
caller on it. ``encoding_format: base64`` (what the openai SDK asks for by
default) is little-endian float32, as OpenAI sends it.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from daytwo.exceptions import InputError
from daytwo.knowledge.embedders import Embedder, OpenAIEmbedder, get_embedder
from daytwo.models.profiles import Profile
from daytwo.models.tokens import count_text
from daytwo.models.types import Usage

if TYPE_CHECKING:
    from daytwo.server.llm.openai_wire import EmbeddingsRequest
    from daytwo.server.llm.service import CallContext, ModelGateway

__all__ = ["embed", "embedder_for"]

MAX_INPUTS = 2048
_remote: dict[str, Embedder] = {}
_lock = threading.Lock()


def embedder_for(profile: Profile) -> Embedder:
    """The embedder of an embedding profile (cached per process)."""
    if profile.provider == "local":
        return get_embedder(profile.model)
    with _lock:
        found = _remote.get(profile.name)
        if found is None:
            if not profile.base_url:
                raise InputError(f"profile {profile.name} has no base_url", param="model")
            key = os.environ.get(profile.api_key_env) if profile.api_key_env else None
            found = OpenAIEmbedder(profile.model, profile.base_url, api_key=key)
            _remote[profile.name] = found
        return found


def embed(gw: ModelGateway, call: CallContext, profile: Profile, req: EmbeddingsRequest) -> bytes:
    """Embed the request's inputs; the OpenAI ``embeddings`` body (blocking)."""
    texts = req.texts()
    if len(texts) > MAX_INPUTS:
        raise InputError(
            f"{len(texts)} inputs in one request, over the limit of {MAX_INPUTS}",
            hint="split the batch",
            param="input",
        )
    for i, text in enumerate(texts):
        if not text:
            raise InputError("an input is empty", hint="send non-empty strings", param=f"input.{i}")
    gw.limits.check(call.principal)
    embedder = embedder_for(profile)
    if req.dimensions is not None and req.dimensions != embedder.dim:
        raise InputError(
            f"model {profile.name} makes {embedder.dim}-dimensional vectors, not {req.dimensions}",
            hint="leave out dimensions",
            param="dimensions",
        )
    vectors = embedder.embed(texts)
    tokens = sum(count_text(t, profile.tokenizer).tokens for t in texts)
    gw.limits.record(call.principal, Usage(input_tokens=tokens), profile)
    data: list[dict[str, Any]] = []
    for i, row in enumerate(np.asarray(vectors, dtype="<f4")):
        value: Any = (
            base64.b64encode(row.tobytes()).decode()
            if req.encoding_format == "base64"
            else row.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    body = {
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(body)
