"""`daytwo models`: the local model, profiles, token budgets, canaries, migration reports."""

from __future__ import annotations

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

app = typer.Typer(help="Models: local LLM, profiles, tokens, canaries.", no_args_is_help=True)


@app.command()
def local(
    prompt: str = typer.Option(..., "--prompt", "-p", help="The user message."),
    max_tokens: int = typer.Option(128, min=1, max=4096, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0, help="Sampling temperature."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one completion of the local model (SmolLM2 on llama.cpp)."""
    from daytwo.models.local import LocalModelServer, LocalModelSettings
    from daytwo.models.openai_compat import OpenAICompatProvider
    from daytwo.models.types import Message

    if not prompt.strip():
        from daytwo.exceptions import InputError

        raise InputError("the prompt is empty", hint='pass --prompt "your question"')
    s = state.settings()
    settings = LocalModelSettings(
        model_path=s.local_model_path, n_ctx=s.local_model_ctx, threads=s.local_model_threads
    )
    with LocalModelServer(settings) as server:
        provider = OpenAICompatProvider(server.base_url, model="smollm2")
        try:
            reply = provider.chat(
                [Message(role="user", content=prompt)],
                max_tokens=max_tokens,
                temperature=temperature,
            )
        finally:
            provider.close()
    data = {
        "text": reply.text,
        "usage": {
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
        },
        "latency_s": round(reply.latency_s, 3),
        "load_s": round(server.load_seconds, 3),
    }
    if json_out:
        print_json(data)
    else:
        console.print(reply.text or "", markup=False)
        console.print(
            f"[dim]{reply.usage.input_tokens} in / {reply.usage.output_tokens} out tokens, "
            f"{reply.latency_s * 1000:.0f} ms[/]"
        )
