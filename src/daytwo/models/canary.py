"""Drift canaries: a fixed prompt set at temperature 0, recorded and checked later.

``record`` runs the prompts (temperature 0, a fixed seed, top-k logprobs) and stores
the outputs with the engine *fingerprint* (weights hash, engine, quantization,
settings). ``check`` runs them again and compares: exact-match rate of the texts,
and logprob divergence, the mean absolute difference of the chosen tokens' logprobs
over the prefix both runs share. A check fails beyond the thresholds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from daytwo.exceptions import InputError, NotFoundError
from daytwo.models.base import ChatModel
from daytwo.models.canary_advice import Adjustment, recommend
from daytwo.models.types import Message
from daytwo.store import Store
from daytwo.store.base import new_id
from daytwo.store.tables.models import CanaryCheck, CanaryOutput, CanaryRecord

__all__ = [
    "DEFAULT_PROMPTS",
    "CanaryReport",
    "PromptDrift",
    "check",
    "fingerprint_of",
    "record",
    "run_prompts",
]

DEFAULT_PROMPTS: tuple[str, ...] = (
    "What is the capital of France? Answer in one word.",
    "Name three primary colours.",
    "Write one sentence about the sea.",
    "What is 12 times 7?",
    "Translate 'good morning' into Spanish.",
    'Return the JSON object {"ok": true} and nothing else.',
    "List the days of the week.",
    "Explain in one sentence what a database index is.",
    "Give a synonym of 'happy'.",
    "Complete: The quick brown fox",
    "Is 17 a prime number? Answer yes or no and why.",
    "Write a haiku about autumn.",
)


def fingerprint_of(model: ChatModel) -> dict[str, Any]:
    """What identifies the engine behind ``model``: weights hash, engine, quantization, settings."""
    from daytwo.models.instrumented import ProfiledModel
    from daytwo.models.local import LocalProvider

    p = model.profile
    fp: dict[str, Any] = {
        "profile": p.name,
        "model": p.model,
        "engine": p.engine,
        "quantization": p.quantization,
    }
    provider = model.provider if isinstance(model, ProfiledModel) else None
    if isinstance(provider, LocalProvider):
        fp.update(provider.server.settings.fingerprint())
    elif p.base_url:
        fp["base_url"] = p.base_url
    return fp


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _tokens(logprobs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for entry in logprobs or []:
        out.append(
            {
                "token": entry.get("token", ""),
                "logprob": float(entry.get("logprob", 0.0)),
                "top": [
                    [t.get("token", ""), float(t.get("logprob", 0.0))]
                    for t in entry.get("top_logprobs") or []
                ],
            }
        )
    return out


def run_prompts(
    model: ChatModel,
    prompts: Sequence[str],
    *,
    top_k: int = 5,
    seed: int | None = 42,
    max_tokens: int = 32,
) -> list[dict[str, Any]]:
    """Each prompt's answer at temperature 0: ``{prompt, text, tokens}``."""
    out = []
    for prompt in prompts:
        reply = model.chat(
            [Message(role="user", content=prompt)],
            temperature=0.0,
            seed=seed,
            logprobs=top_k,
            max_tokens=max_tokens,
        )
        out.append({"prompt": prompt, "text": reply.text or "", "tokens": _tokens(reply.logprobs)})
    return out


def record(
    store: Store,
    model: ChatModel,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    *,
    top_k: int = 5,
    seed: int | None = 42,
    max_tokens: int = 32,
) -> str:
    """Run the prompts and store them with the fingerprint; return the record id."""
    if not prompts:
        raise InputError("the canary prompt set is empty", hint="give at least one prompt")
    fp = fingerprint_of(model)
    outputs = run_prompts(model, prompts, top_k=top_k, seed=seed, max_tokens=max_tokens)
    rid = new_id()
    with store.session(write=True) as s:
        s.add(
            CanaryRecord(
                id=rid,
                profile=model.profile.name,
                fingerprint=fp,
                fingerprint_hash=_hash(fp),
                prompt_set_hash=_hash(list(prompts)),
                top_k=top_k,
                seed=seed,
                max_tokens=max_tokens,
            )
        )
        s.flush()
        for i, o in enumerate(outputs):
            s.add(
                CanaryOutput(
                    record_id=rid,
                    position=i,
                    prompt=o["prompt"],
                    text=o["text"],
                    tokens=o["tokens"],
                )
            )
    return rid


class PromptDrift(BaseModel):
    """One prompt compared with its record."""

    prompt: str
    exact_match: bool
    first_divergence: int | None
    logprob_divergence: float
    recorded: str
    now: str


class CanaryReport(BaseModel):
    """A check against a record."""

    record_id: str
    profile: str
    exact_match_rate: float
    logprob_divergence: float
    max_logprob_divergence: float
    fingerprint_changes: dict[str, list[Any]]
    prompts: list[PromptDrift]
    min_exact_match: float
    max_divergence: float
    passed: bool
    recommendations: list[Adjustment] = []
    """When the check fails: inference parameters to adjust, with their evidence."""


def _compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[int | None, float]:
    """(first index where the chosen tokens differ, mean |Δ logprob| over the shared prefix)."""
    diffs = []
    first: int | None = None
    for i in range(max(len(old), len(new))):
        if i >= len(old) or i >= len(new) or old[i]["token"] != new[i]["token"]:
            first = i
            break
        diffs.append(abs(old[i]["logprob"] - new[i]["logprob"]))
    return first, (sum(diffs) / len(diffs) if diffs else 0.0)


def latest_record(store: Store, profile: str) -> str:
    """Id of the newest record of ``profile`` (NotFoundError if none)."""
    with store.session() as s:
        rid = s.scalar(
            sa.select(CanaryRecord.id)
            .where(CanaryRecord.profile == profile)
            .order_by(CanaryRecord.created_at.desc())
            .limit(1)
        )
    if rid is None:
        raise NotFoundError(
            f"no canary record for profile {profile}",
            hint=f"run `daytwo models canary record --profile {profile}` first",
        )
    return rid


def check(
    store: Store,
    model: ChatModel,
    *,
    record_id: str | None = None,
    min_exact_match: float = 1.0,
    max_divergence: float = 0.05,
) -> CanaryReport:
    """Run the recorded prompts again and compare; the report is stored too."""
    rid = record_id or latest_record(store, model.profile.name)
    with store.session() as s:
        rec = s.get(CanaryRecord, rid)
        if rec is None:
            raise NotFoundError(f"no canary record {rid}", hint="list records with --json")
        rows = list(
            s.scalars(
                sa.select(CanaryOutput)
                .where(CanaryOutput.record_id == rid)
                .order_by(CanaryOutput.position)
            )
        )
        old_fp, top_k, seed, max_tokens = rec.fingerprint, rec.top_k, rec.seed, rec.max_tokens
    prompts = [r.prompt for r in rows]
    now = run_prompts(model, prompts, top_k=top_k, seed=seed, max_tokens=max_tokens)
    drifts = []
    for r, n in zip(rows, now, strict=True):
        first, div = _compare(r.tokens, n["tokens"])
        drifts.append(
            PromptDrift(
                prompt=r.prompt,
                exact_match=r.text == n["text"],
                first_divergence=first,
                logprob_divergence=div,
                recorded=r.text,
                now=n["text"],
            )
        )
    fp = fingerprint_of(model)
    changes = {
        k: [old_fp.get(k), fp.get(k)]
        for k in sorted(set(old_fp) | set(fp))
        if old_fp.get(k) != fp.get(k)
    }
    rate = sum(d.exact_match for d in drifts) / len(drifts) if drifts else 1.0
    divs = [d.logprob_divergence for d in drifts]
    mean_div = sum(divs) / len(divs) if divs else 0.0
    passed = rate >= min_exact_match and mean_div <= max_divergence
    advice = (
        []
        if passed
        else recommend(
            [{"text": r.text, "tokens": r.tokens} for r in rows],
            now,
            model.profile.sampling,
            changes,
        )
    )
    report = CanaryReport(
        record_id=rid,
        profile=model.profile.name,
        exact_match_rate=rate,
        logprob_divergence=mean_div,
        max_logprob_divergence=max(divs, default=0.0),
        fingerprint_changes=changes,
        prompts=drifts,
        min_exact_match=min_exact_match,
        max_divergence=max_divergence,
        passed=passed,
        recommendations=advice,
    )
    with store.session(write=True) as s:
        s.add(
            CanaryCheck(
                id=new_id(),
                record_id=rid,
                profile=model.profile.name,
                fingerprint=fp,
                exact_match_rate=rate,
                logprob_divergence=mean_div,
                passed=report.passed,
                details=report.model_dump(mode="json"),
            )
        )
    return report
