"""The model gateway's HTTP routes under ``/v1/`` (OpenAI-compatible, plus Anthropic Messages).

Each route authenticates itself (``Authorization: Bearer dt_...``, or ``x-api-key``)
and answers errors in the vendor's own shape (:mod:`daytwo.server.llm.errors`)
instead of daytwo's common error body, so the official SDKs raise their usual
exceptions. Bodies are parsed here rather than by FastAPI so that a malformed one
gets the vendor's 400 naming the field.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from daytwo.exceptions import InputError
from daytwo.models.types import ChatResponse, LastBatch, StreamChunk, Usage
from daytwo.server.llm import anthropic_wire, embeddings
from daytwo.server.llm.errors import GATEWAY_RESPONSES, Wire, error_response
from daytwo.server.llm.openai_wire import (
    ChatRequest,
    ChunkEvents,
    EmbeddingsRequest,
    chat_completion,
    parse_body,
)
from daytwo.server.llm.service import (
    AsyncModelStream,
    CallContext,
    ChunkStream,
    GatewayModel,
    ModelGateway,
    ModelStream,
    StreamResult,
)

__all__ = ["FAST_ROUTES", "dispatch", "router"]

router = APIRouter(prefix="/v1", tags=["model gateway"], responses=GATEWAY_RESPONSES)

R = TypeVar("R")


def gateway_of(request: Request) -> ModelGateway:
    """The app's model gateway."""
    gw: ModelGateway = request.app.state.model_gateway
    return gw


def api_key(request: Request, *, anthropic: bool = False) -> str | None:
    """The key from ``Authorization: Bearer`` or ``x-api-key`` (Anthropic SDKs send the latter)."""
    auth = request.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


async def in_thread(call: CallContext, fn: Callable[..., R], *args: Any) -> R:
    """Run blocking ``fn`` in the thread pool, inside the request's context."""
    return await anyio.to_thread.run_sync(call.run, fn, *args)


async def complete(
    gw: ModelGateway, call: CallContext, model: GatewayModel, req: ChatRequest
) -> ChatResponse:
    """One non-streamed completion: on the event loop when the model's wire allows
    (no thread hop), else in the thread pool; in the request's context either way."""
    if gw.can_await(model, req):
        return await asyncio.create_task(gw.acomplete(call, model, req), context=call.context)
    return await in_thread(call, gw.complete, call, model, req)


class Events(Protocol):
    """A wire's events of one stream (:class:`ChunkEvents`, :class:`MessageEvents`)."""

    def batch(self, chunks: Sequence[StreamChunk]) -> bytes: ...

    def end(self, usage: Usage | None) -> bytes: ...


class SSEResponse(Response):
    """A server-sent-event stream relaying a started model stream.

    Each batch of chunks (those that arrived together) goes out in one write, the
    last events with the end of the body: with the last batch when the stream says
    which it is (:class:`LastBatch`), so the model stream's own ending (its span)
    comes after the client has the whole answer. A client that goes away is noticed at once
    (a waiter on ``receive``, as Starlette's ``StreamingResponse`` has, without its
    task group): the model stream is cancelled, which records what was produced, and
    that is the normal end of the response. The model stream is closed however the
    response ends, even when it was never iterated."""

    media_type = "text/event-stream"

    def __init__(self, stream: ChunkStream, events: Events, result: StreamResult) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})
        self.stream = stream
        self.events = events
        self.result = result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "gone": False}

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        def gone(waiter: asyncio.Future[None]) -> None:
            if not state["done"] and not waiter.cancelled() and waiter.exception() is None:
                state["gone"] = True
                task.cancel()

        waiter = asyncio.ensure_future(listen())
        waiter.add_done_callback(gone)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            ended = False
            async for batch in self.stream:
                if ended:
                    continue
                body = self.events.batch(batch)
                if isinstance(batch, LastBatch):
                    # The usage is settled: answer in full now; the model stream
                    # winds down (its span ends) after the client has everything.
                    body += self.events.end(self.result.usage)
                    await send({"type": "http.response.body", "body": body, "more_body": False})
                    ended = state["done"] = True
                elif body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            if not ended:
                end = self.events.end(self.result.usage)
                await send({"type": "http.response.body", "body": end, "more_body": False})
        except asyncio.CancelledError:
            if not state["gone"]:
                raise
            task.uncancel()
        except (ClientDisconnect, OSError):
            pass
        finally:
            state["done"] = True
            waiter.cancel()
            await self.stream.aclose()


async def start_stream(
    gw: ModelGateway, call: CallContext, model: GatewayModel, req: ChatRequest
) -> tuple[ChunkStream, StreamResult]:
    """A started stream (its first chunks received, or the error that came before
    them) and where its usage lands: on the event loop when the model's wire allows,
    else in a worker thread."""
    if gw.can_await_stream(model):
        stream, result = gw.astream(call, model, req)
        return await open_async_stream(call, stream), result
    return await open_stream(call, lambda: gw.stream(call, model, req))


async def open_async_stream(call: CallContext, stream: AsyncModelStream) -> ChunkStream:
    """Await an event-loop stream's first chunks, in a task in the request's context
    (the budget check and the start of the ``chat`` span run then, under the caller's
    trace and attribution); an error before them is raised here, so it becomes an
    HTTP error. The rest is iterated by the response itself: no thread, no hand-over
    per chunk. Returns the chunks, the first included."""

    async def first() -> list[StreamChunk] | None:
        return await anext(stream, None)

    return _Started(await asyncio.create_task(first(), context=call.context), stream)


class _Started:
    """A model stream whose first chunks were received: those, then the rest.
    Closing it closes the model stream, iterated or not (which records its span)."""

    def __init__(self, first: list[StreamChunk] | None, stream: AsyncModelStream) -> None:
        self._first = first
        self._stream = stream

    def __aiter__(self) -> _Started:
        return self

    async def __anext__(self) -> list[StreamChunk]:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await anext(self._stream)

    async def aclose(self) -> None:
        self._first = None
        await self._stream.aclose()


_Item = tuple[str, Any]
"""What the producer thread hands over: ("chunk", StreamChunk), ("error", exc), ("end", None)."""


async def open_stream(
    call: CallContext, stream: Callable[[], tuple[ModelStream, R]]
) -> tuple[AsyncGenerator[list[StreamChunk], None], R]:
    """Start a model stream in one worker thread and wait for its first chunk.

    The thread (in the request's context) runs the whole blocking stream and hands each
    chunk to the event loop as it arrives: one thread-pool hop per stream, not one per
    chunk. An error before the first chunk (budget, context overflow, upstream refusal)
    is raised here, so it becomes an HTTP error; later ones end the event stream.
    Returns the chunks (those waiting together as one batch) and the stream's result
    holder (``stream()``'s second value).
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Item] = asyncio.Queue()
    stop = threading.Event()
    started: list[R] = []

    def put(kind: str, value: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def produce() -> None:
        try:
            it, result = stream()
            started.append(result)
            for chunk in it:
                put("chunk", chunk)
                if stop.is_set():
                    # The client left: closing the stream records what was produced.
                    it.close()
                    break
            put("end", None)
        except Exception as exc:
            put("error", exc)

    task = asyncio.ensure_future(anyio.to_thread.run_sync(call.run, produce))
    first = await queue.get()
    if first[0] == "error":
        await task
        raise first[1]
    return _batches(first, queue, stop, task), started[0]


async def _batches(
    first: _Item, queue: asyncio.Queue[_Item], stop: threading.Event, task: asyncio.Future[None]
) -> AsyncGenerator[list[StreamChunk], None]:
    """The chunks the producer hands over, those already waiting as one batch; when
    the consumer stops early, the producer closes the model stream at its next chunk,
    and this waits for it (shielded), so the call's span and budget are recorded
    whatever happened to the client."""
    try:
        item: _Item | None = first
        while item is not None and item[0] == "chunk":
            batch: list[StreamChunk] = []
            while item is not None and item[0] == "chunk":
                batch.append(item[1])
                item = None if queue.empty() else queue.get_nowait()
            yield batch
            if item is None:
                item = await queue.get()
        if item is not None and item[0] == "error":
            raise item[1]
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):
            await task


@router.post(
    "/chat/completions",
    summary="Create a chat completion (OpenAI-compatible)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def chat_completions(request: Request) -> Response:
    """OpenAI ``POST /v1/chat/completions``, non-streaming and SSE streaming."""
    gw = gateway_of(request)
    try:
        principal = gw.authenticate(api_key(request))
        req = parse_body(await request.body(), ChatRequest)
        model = gw.chat_model(principal.tenant, req.model)
        call = gw.call_context(principal, request.headers)
        if req.stream:
            if req.tools:
                raise InputError(
                    "streaming with tools is not supported by the gateway",
                    hint="set stream to false for requests with tools",
                    param="stream",
                )
            chunks, result = await start_stream(gw, call, model, req)
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return SSEResponse(chunks, ChunkEvents(req.model, include_usage=include_usage), result)
        response = await complete(gw, call, model, req)
    except Exception as exc:
        return error_response(exc)
    return Response(
        chat_completion(response, req.model),
        media_type="application/json",
        headers={"x-daytwo-model-profile": response.profile or ""},
    )


@router.post(
    "/embeddings",
    summary="Create embeddings (OpenAI-compatible)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def create_embeddings(request: Request) -> Response:
    """OpenAI ``POST /v1/embeddings`` over daytwo's embedders."""
    gw = gateway_of(request)
    try:
        principal = gw.authenticate(api_key(request))
        req = parse_body(await request.body(), EmbeddingsRequest)
        profile = gw.embedding_profile(req.model)
        call = gw.call_context(principal, request.headers)
        body = await in_thread(call, embeddings.embed, gw, call, profile, req)
    except Exception as exc:
        return error_response(exc)
    return Response(body, media_type="application/json")


@router.get("/models", summary="List the models a key may use (OpenAI-compatible)")
async def list_models(request: Request) -> Response:
    """OpenAI ``GET /v1/models``: chat and embedding profiles, and the tenant's routes."""
    gw = gateway_of(request)
    try:
        principal = gw.authenticate(api_key(request))
        names = gw.chat_names(principal.tenant) + gw.embedding_names()
    except Exception as exc:
        return error_response(exc)
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "daytwo"} for n in names]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


@router.post(
    "/messages",
    summary="Create a message (Anthropic Messages API)",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def messages(request: Request) -> Response:
    """Anthropic ``POST /v1/messages``, non-streaming and streaming."""
    gw = gateway_of(request)
    wire: Wire = "anthropic"
    try:
        principal = gw.authenticate(api_key(request, anthropic=True))
        req = anthropic_wire.parse(await request.body())
        model = gw.chat_model(principal.tenant, req.model)
        call = gw.call_context(principal, request.headers)
        chat_req = anthropic_wire.to_chat_request(req)
        if req.stream and req.tools:
            raise InputError(
                "streaming with tools is not supported by the gateway",
                hint="set stream to false for requests with tools",
                param="stream",
            )
        if req.stream:
            chunks, result = await start_stream(gw, call, model, chat_req)
            return SSEResponse(chunks, anthropic_wire.MessageEvents(req.model), result)
        response = await complete(gw, call, model, chat_req)
    except Exception as exc:
        return error_response(exc, wire)
    return Response(
        anthropic_wire.message(response, req.model),
        media_type="application/json",
        headers={"x-daytwo-model-profile": response.profile or ""},
    )


FAST_ROUTES: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
    ("POST", "/v1/chat/completions"): chat_completions,
    ("POST", "/v1/messages"): messages,
    ("POST", "/v1/embeddings"): create_embeddings,
    ("GET", "/v1/models"): list_models,
}
"""The gateway's routes by (method, path), for the app's direct dispatch
(:class:`daytwo.server.app.DaytwoAPI`): each takes the bare request, parses and
authenticates it itself and answers every error in the vendor's shape, so none
needs FastAPI's routing, dependency solving or exception middleware."""


async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI app answering exactly the :data:`FAST_ROUTES` (the caller checked the
    method and path). An exception the endpoint did not turn into an answer itself
    becomes a vendor-shaped 500, as the app's stack would give, never a traceback."""
    endpoint = FAST_ROUTES[(scope["method"], scope["path"])]
    try:
        response = await endpoint(Request(scope, receive))
    except Exception as exc:
        response = error_response(exc, "anthropic" if scope["path"] == "/v1/messages" else "openai")
    await response(scope, receive, send)
