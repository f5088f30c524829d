"""Structured output with the real local model: raw prompting vs instructor vs our ladder.

    python bench/structured.py --json bench/results/structured.json [--per-schema 42]

One llama.cpp server (SmolLM2-135M, Q4_1) serves every method in the same run.
Five schemas of increasing difficulty (flat enum; numeric ranges; arrays with
bounds; nested objects with enums; arrays of nested objects with bounds); the
prompts are generated from seeded random records, so the ground truth is known.

Methods (temperature 0, same first max_tokens, same retries: at most 1 + retries calls):
- ``raw``: one call, the JSON Schema in the system prompt, strict validation;
- ``instructor``: ``instructor.from_openai(..., mode=Mode.JSON)`` with ``max_retries``
  (JSON mode: ``response_format: json_object``, the schema in the system prompt);
- ``instructor_json_schema``: ``mode=Mode.JSON_SCHEMA`` (``response_format: json_schema``,
  which llama.cpp compiles to a grammar: the peer configuration closest to ours);
- ``ladder_no_grammar``: ``generate`` with rungs (repair, bounded, reask),
  ``max_reasks`` = retries;
- ``ladder_grammar``: ``generate`` with rungs (constrained, repair, bounded, reask).

Reported per method: schema-valid rate (overall and per schema), field accuracy
against the ground truth (valid outputs that equal the record), tokens and latency,
and sample outputs (the first prompts of every schema, every attempt's text).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from daytwo.exceptions import StructuredOutputError
from daytwo.models import Ladder, LocalModelSettings, Message, generate, get_model
from daytwo.models.profiles import ProfileRegistry

# ---------------------------------------------------------------- schemas


class Sentiment(BaseModel):
    """1. flat object with an enum."""

    label: Literal["positive", "negative", "neutral"]


class Contact(BaseModel):
    """2. strings and a bounded integer."""

    name: str
    city: str
    age: int = Field(ge=18, le=99)


class Product(BaseModel):
    """3. bounded number, bounded array, boolean."""

    name: str
    price: float = Field(gt=0, le=500)
    tags: list[str] = Field(min_length=1, max_length=3)
    in_stock: bool


class Address(BaseModel):
    street: str
    city: str
    country: Literal["FR", "DE", "ES", "IT", "NL"]


class Person(BaseModel):
    """4. nested object with an enum, array with a bound."""

    name: str
    address: Address
    languages: list[Literal["en", "fr", "de", "es", "it"]] = Field(min_length=1, max_length=2)


class Item(BaseModel):
    sku: str
    qty: int = Field(ge=1, le=9)


class Order(BaseModel):
    """5. array of nested objects with bounds, enums and ranges."""

    order_id: str
    status: Literal["new", "paid", "shipped"]
    items: list[Item] = Field(min_length=1, max_length=3)
    total: float = Field(ge=0, le=1000)


# ---------------------------------------------------------------- prompts

NAMES = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Linus Pauling",
    "Marie Curie",
    "Niels Bohr",
    "Rosalind Franklin",
    "Emmy Noether",
    "Carl Gauss",
    "Lise Meitner",
]
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Amsterdam", "Lyon", "Munich", "Seville"]
COUNTRY = {
    "Paris": "FR",
    "Lyon": "FR",
    "Berlin": "DE",
    "Munich": "DE",
    "Madrid": "ES",
    "Seville": "ES",
    "Rome": "IT",
    "Amsterdam": "NL",
}
PRODUCTS = ["desk lamp", "coffee grinder", "wool scarf", "notebook", "kettle", "backpack"]
TAGS = ["home", "kitchen", "office", "travel", "winter", "gift"]
LANGS = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
REVIEWS = {
    "positive": [
        "I love it, works perfectly.",
        "Fantastic service, thank you!",
        "Best purchase this year.",
    ],
    "negative": [
        "It broke after a day, awful.",
        "Terrible support, I want a refund.",
        "Very disappointed, do not buy.",
    ],
    "neutral": ["It arrived on Tuesday.", "The box is blue.", "I ordered it last week."],
}


def _sentiment(r: random.Random) -> tuple[str, dict[str, Any]]:
    label = r.choice(list(REVIEWS))
    return f"Classify the sentiment of this review: {r.choice(REVIEWS[label])}", {"label": label}


def _contact(r: random.Random) -> tuple[str, dict[str, Any]]:
    name, city, age = r.choice(NAMES), r.choice(CITIES), r.randint(18, 99)
    return (
        f"Extract the contact: {name} is {age} years old and lives in {city}.",
        {"name": name, "city": city, "age": age},
    )


def _product(r: random.Random) -> tuple[str, dict[str, Any]]:
    name = r.choice(PRODUCTS)
    price = round(r.uniform(5, 400), 2)
    tags = r.sample(TAGS, r.randint(1, 3))
    stock = r.random() < 0.5
    text = (
        f"Extract the product: the {name} costs {price} euros, tags: {', '.join(tags)}; "
        f"it is {'in stock' if stock else 'out of stock'}."
    )
    return text, {"name": name, "price": price, "tags": tags, "in_stock": stock}


def _person(r: random.Random) -> tuple[str, dict[str, Any]]:
    name, city = r.choice(NAMES), r.choice(CITIES)
    street = f"{r.randint(1, 99)} {r.choice(['Main', 'Oak', 'Station', 'Market'])} Street"
    langs = r.sample(list(LANGS), r.randint(1, 2))
    text = (
        f"Extract the person: {name} lives at {street}, {city} (country code "
        f"{COUNTRY[city]}) and speaks {' and '.join(LANGS[x] for x in langs)}."
    )
    return text, {
        "name": name,
        "address": {"street": street, "city": city, "country": COUNTRY[city]},
        "languages": langs,
    }


def _order(r: random.Random) -> tuple[str, dict[str, Any]]:
    oid = f"ORD-{r.randint(1000, 9999)}"
    status = r.choice(["new", "paid", "shipped"])
    items = [
        {"sku": f"SKU{r.randint(10, 99)}", "qty": r.randint(1, 9)} for _ in range(r.randint(1, 3))
    ]
    total = round(r.uniform(10, 900), 2)
    listed = "; ".join(f"{i['qty']} x {i['sku']}" for i in items)
    text = f"Extract the order: order {oid} is {status}, items: {listed}; total {total} euros."
    return text, {"order_id": oid, "status": status, "items": items, "total": total}


SCHEMAS: list[tuple[type[BaseModel], Callable[[random.Random], tuple[str, dict[str, Any]]]]] = [
    (Sentiment, _sentiment),
    (Contact, _contact),
    (Product, _product),
    (Person, _person),
    (Order, _order),
]


def _schema_prompt(schema: type[BaseModel]) -> str:
    return (
        "Answer with a single JSON value that validates against this JSON Schema, and "
        f"nothing else (no prose, no code fences):\n{json.dumps(schema.model_json_schema())}"
    )


def _equal(value: BaseModel | None, truth: dict[str, Any]) -> bool:
    if value is None:
        return False
    return json.loads(value.model_dump_json()) == json.loads(json.dumps(truth))


# ---------------------------------------------------------------- methods

Result = dict[str, Any]


def run_raw(model: Any, schema: type[BaseModel], prompt: str, max_tokens: int) -> Result:
    reply = model.chat(
        [
            Message(role="system", content=_schema_prompt(schema)),
            Message(role="user", content=prompt),
        ],
        temperature=0.0,
        max_tokens=max_tokens,
    )
    try:
        value: BaseModel | None = schema.model_validate_json(reply.text or "")
    except Exception:
        value = None
    return {
        "value": value,
        "calls": 1,
        "in": reply.usage.input_tokens,
        "out": reply.usage.output_tokens,
        "rung": "raw" if value else None,
        "texts": [_attempt("raw", reply.text, reply.finish_reason, value is not None)],
    }


def _attempt(step: str, text: str | None, finish: str | None, valid: bool) -> dict[str, Any]:
    return {"step": step, "finish_reason": finish, "valid": valid, "text": (text or "")[:300]}


def run_ladder(model: Any, schema: type[BaseModel], prompt: str, ladder: Ladder) -> Result:
    try:
        res = generate(model, [Message(role="user", content=prompt)], schema, ladder=ladder)
    except StructuredOutputError as exc:
        attempts = exc.context["attempts"]
        usage = exc.context["usage"]
        return {
            "value": None,
            "calls": sum(a.rung != "repair" for a in attempts),
            "in": usage.input_tokens,
            "out": usage.output_tokens,
            "rung": None,
            "texts": [_attempt(a.rung, a.text, a.finish_reason, a.valid) for a in attempts],
        }
    return {
        "value": res.value,
        "calls": sum(a.rung != "repair" for a in res.attempts),
        "in": res.usage.input_tokens,
        "out": res.usage.output_tokens,
        "rung": res.rung,
        "texts": [_attempt(a.rung, a.text, a.finish_reason, a.valid) for a in res.attempts],
    }


def make_instructor(base_url: str, mode: str) -> Any:
    import instructor
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=600)
    return instructor.from_openai(client, mode=instructor.Mode[mode])


def _completion_text(completion: Any) -> tuple[str | None, str | None]:
    try:
        choice = completion.choices[0]
        return choice.message.content, choice.finish_reason
    except (AttributeError, IndexError, TypeError):
        return None, None


def run_instructor(
    client: Any, schema: type[BaseModel], prompt: str, retries: int, max_tokens: int
) -> Result:
    try:
        value, completion = client.chat.completions.create_with_completion(
            model="local",
            response_model=schema,
            messages=[{"role": "user", "content": prompt}],
            max_retries=retries,
            temperature=0.0,
            max_tokens=max_tokens,
        )
    except Exception as exc:  # instructor's retry, incomplete-output and validation errors
        if type(exc).__module__.startswith(("openai", "httpx")):
            raise
        # Sum the usage of every failed attempt (InstructorRetryException.failed_attempts;
        # an IncompleteOutputException at max_tokens carries only last_completion).
        completions = [a.completion for a in getattr(exc, "failed_attempts", None) or []]
        if not completions:
            completions = [getattr(exc, "last_completion", None)]
        usages = [getattr(c, "usage", None) for c in completions]
        return {
            "value": None,
            "calls": int(getattr(exc, "n_attempts", 1)),
            "in": sum(int(getattr(u, "prompt_tokens", 0) or 0) for u in usages),
            "out": sum(int(getattr(u, "completion_tokens", 0) or 0) for u in usages),
            "rung": None,
            "error": type(exc).__name__,
            "texts": [
                _attempt(type(exc).__name__, *_completion_text(c), False) for c in completions
            ],
        }
    usage = completion.usage
    return {
        "value": value,
        "calls": None,
        "in": int(usage.prompt_tokens or 0),
        "out": int(usage.completion_tokens or 0),
        "rung": "instructor",
        "texts": [_attempt("instructor", *_completion_text(completion), True)],
    }


# ---------------------------------------------------------------- main


def summarise(
    rows: dict[str, list[dict[str, Any]]], args: argparse.Namespace, n_cases: int, wall: float
) -> dict[str, Any]:
    """The JSON result over the rows measured so far."""
    summary: dict[str, Any] = {}
    for m, rs in rows.items():
        if not rs:
            continue
        lat = [r["latency_s"] for r in rs]
        per_schema = {}
        for schema, _ in SCHEMAS:
            sub = [r for r in rs if r["schema"] == schema.__name__]
            if sub:
                per_schema[schema.__name__] = round(sum(r["valid"] for r in sub) / len(sub), 4)
        rungs: dict[str, int] = {}
        for r in rs:
            key = r["rung"] or "failed"
            rungs[key] = rungs.get(key, 0) + 1
        summary[m] = {
            "prompts": len(rs),
            "valid_rate": round(sum(r["valid"] for r in rs) / len(rs), 4),
            "correct_rate": round(sum(r["correct"] for r in rs) / len(rs), 4),
            "valid_rate_by_schema": per_schema,
            "rungs": rungs,
            "input_tokens_mean": round(statistics.fmean(r["in"] for r in rs), 1),
            "output_tokens_mean": round(statistics.fmean(r["out"] for r in rs), 1),
            "latency_p50_s": round(statistics.median(lat), 3),
            "latency_mean_s": round(statistics.fmean(lat), 3),
            "latency_p95_s": round(sorted(lat)[int(0.95 * (len(lat) - 1))], 3),
            "calls_max": max((r["calls"] or 1) for r in rs),
            "finish_length_rate": round(
                sum(any(t["finish_reason"] == "length" for t in r["texts"]) for r in rs) / len(rs),
                4,
            ),
            "samples": {
                schema.__name__: [
                    {"prompt": r["prompt"], "valid": r["valid"], "attempts": r["texts"]}
                    for r in rs
                    if r["schema"] == schema.__name__
                ][:3]
                for schema, _ in SCHEMAS
            },
        }
    done = min((len(rs) for rs in rows.values()), default=0)
    return {
        "benchmark": "structured output, SmolLM2-135M-Instruct Q4_1 on llama.cpp (xllamacpp)",
        "complete": done == n_cases,
        "prompts_planned": n_cases,
        "prompts_measured_by_every_method": done,
        "schemas": [s.__name__ for s, _ in SCHEMAS],
        "retries": args.retries,
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
        "llama_cpp_threads": args.threads,
        "llama_cpp_n_ctx": args.n_ctx,
        "instructor_modes": {"instructor": "JSON", "instructor_json_schema": "JSON_SCHEMA"},
        "ladders": {
            "ladder_no_grammar": _ladder_config(no_grammar_ladder(args)),
            "ladder_grammar": _ladder_config(grammar_ladder(args)),
        },
        "wall_s": round(wall, 1),
        "methods": summary,
    }


def no_grammar_ladder(args: argparse.Namespace) -> Ladder:
    return Ladder(
        rungs=("repair", "bounded", "reask"), max_reasks=args.retries, max_tokens=args.max_tokens
    )


def grammar_ladder(args: argparse.Namespace) -> Ladder:
    return Ladder(
        rungs=("constrained", "repair", "bounded", "reask"),
        max_reasks=args.retries,
        max_tokens=args.max_tokens,
    )


def _ladder_config(lad: Ladder) -> dict[str, Any]:
    return {
        "rungs": list(lad.rungs),
        "max_reasks": lad.max_reasks,
        "max_tokens_first": lad.max_tokens,
        "instruction": lad.instruction,
        "instruction_in": lad.instruction_in,
        "bound_string": lad.bound_string,
        "bound_items": lad.bound_items,
    }


def write(path: Path, out: dict[str, Any]) -> None:
    """Write the JSON result (also after every block, so a cut-short run keeps its numbers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def merge(args: argparse.Namespace) -> int:
    """Summarise the rows of several shard files as one run."""
    parts = [json.loads(p.read_text(encoding="utf-8")) for p in args.merge]
    rows: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        for m, rs in part["rows"].items():
            rows.setdefault(m, []).extend(rs)
    # Shards of one run may be split by method into several files (--methods): count the
    # prompts of each shard once.
    planned = sum(
        {p.get("shard", str(i)): p["prompts_planned"] for i, p in enumerate(parts)}.values()
    )
    args.retries, args.max_tokens = parts[0]["retries"], parts[0]["max_tokens"]
    args.threads = parts[0]["llama_cpp_threads"]
    args.n_ctx = parts[0]["llama_cpp_n_ctx"]
    out = summarise(rows, args, planned, max(p["wall_s"] for p in parts))
    out["shards"] = len({p.get("shard", str(i)) for i, p in enumerate(parts)})
    out["files_merged"] = len(parts)
    if args.note:
        out["notes"] = args.note
    write(args.json_out, {**out, "rows": rows})
    print(json.dumps(out, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_out", type=Path, required=True)
    parser.add_argument("--per-schema", type=int, default=42)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="llama.cpp threads; 1 is ~10x faster than 2 on a shared, oversubscribed machine",
    )
    parser.add_argument("--n-ctx", type=int, default=2048, help="llama.cpp context size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--note", action="append", help="a note added to a merged result")
    parser.add_argument(
        "--write-every-prompt",
        action="store_true",
        help="write the JSON after every prompt (a run cut short keeps every measured prompt)",
    )
    parser.add_argument("--round", type=int, default=4, help="prompts per schema per round")
    parser.add_argument("--shard", default="0/1", help="I/N: run every N-th prompt from I")
    parser.add_argument(
        "--merge", nargs="+", type=Path, help="merge the JSON files of shards into --json"
    )
    parser.add_argument(
        "--methods",
        default="raw,instructor,instructor_json_schema,ladder_no_grammar,ladder_grammar",
    )
    args = parser.parse_args()

    if args.merge:
        return merge(args)
    rng = random.Random(args.seed)
    cases = [(schema, *make(rng)) for schema, make in SCHEMAS for _ in range(args.per_schema)]
    methods = args.methods.split(",")
    local = LocalModelSettings(threads=args.threads, n_ctx=args.n_ctx)
    model = get_model("local/smollm2-135m", registry=ProfileRegistry.load(), local=local)
    base_url = model.provider.base_url  # type: ignore[attr-defined]  # starts the engine once
    client = make_instructor(base_url, "JSON")
    client_js = make_instructor(base_url, "JSON_SCHEMA")
    no_grammar, grammar = no_grammar_ladder(args), grammar_ladder(args)
    runners: dict[str, Callable[[type[BaseModel], str], Result]] = {
        "raw": lambda s, p: run_raw(model, s, p, args.max_tokens),
        "instructor": lambda s, p: run_instructor(client, s, p, args.retries, args.max_tokens),
        "instructor_json_schema": lambda s, p: run_instructor(
            client_js, s, p, args.retries, args.max_tokens
        ),
        "ladder_no_grammar": lambda s, p: run_ladder(model, s, p, no_grammar),
        "ladder_grammar": lambda s, p: run_ladder(model, s, p, grammar),
    }
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    started = time.perf_counter()
    by_schema = {
        schema.__name__: [(p, t) for n, (s, p, t) in enumerate(cases) if s is schema]
        for schema, _ in SCHEMAS
    }
    shard, shards = (int(x) for x in args.shard.split("/"))
    # Rounds of --round prompts per schema; within a round, schema by schema and method by
    # method, so consecutive requests share their long prefix (instructions + schema) and
    # llama.cpp's prompt cache serves every method alike. A run cut short after any round
    # has measured every method on the same prompts, balanced across schemas.
    for start in range(0, args.per_schema, args.round):
        for schema, _ in SCHEMAS:
            block = [
                pt
                for k, pt in enumerate(by_schema[schema.__name__][start : start + args.round])
                if (start + k) % shards == shard
            ]
            for m in methods:
                for prompt, truth in block:
                    t0 = time.perf_counter()
                    res = runners[m](schema, prompt)
                    rows[m].append(
                        {
                            "schema": schema.__name__,
                            "prompt": prompt,
                            "valid": res["value"] is not None,
                            "correct": _equal(res["value"], truth),
                            "rung": res["rung"],
                            "calls": res["calls"],
                            "in": res["in"],
                            "out": res["out"],
                            "latency_s": time.perf_counter() - t0,
                            "texts": res["texts"],
                        }
                    )
                    if args.write_every_prompt:
                        out = summarise(
                            rows, args, len(cases) // shards, time.perf_counter() - started
                        )
                        write(args.json_out, {**out, "shard": args.shard, "rows": rows})
        out = summarise(rows, args, len(cases) // shards, time.perf_counter() - started)
        write(args.json_out, {**out, "shard": args.shard, "rows": rows})
        print(
            f"round {start // args.round + 1}: "
            + ", ".join(f"{m} {sum(r['valid'] for r in rows[m])}/{len(rows[m])}" for m in methods)
            + f" ({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    model.close()
    out = summarise(rows, args, len(cases) // shards, time.perf_counter() - started)
    write(args.json_out, {**out, "shard": args.shard, "rows": rows})
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
