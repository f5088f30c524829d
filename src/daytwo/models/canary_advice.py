"""Which inference parameters to adjust when a canary drifts.

A new quantization or engine build changes the shape of the token distribution, not
only which token wins. From a record and a re-run of the same prompts at
temperature 0 (top-k logprobs of each position) this module estimates:

- **temperature**: the factor ``T`` such that the new top-k distributions raised to
  ``1/T`` have the recorded mean entropy (a flatter build needs ``T < 1``), fitted over
  the positions both runs share; the profile's temperature times ``T`` gives the
  recorded behaviour back;
- **top-p**: the probability mass the recorded nucleus's tokens now hold, where the
  profile sets ``top_p`` and the nucleus fits in the recorded top-k;
- **repeat penalty**: when the answers repeat their own 3-grams more than recorded;
- **grammar sampling**: when answers that were JSON no longer parse;
- **engine options**: when only engine settings changed (batch sizes, threads), the
  recorded values to pin if bit-for-bit replay matters.

Each recommendation carries the evidence it rests on; nothing is applied.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from daytwo.models.profiles import Sampling

__all__ = ["ENGINE_KEYS", "Adjustment", "recommend"]

ENGINE_KEYS = ("n_ctx", "threads", "n_batch", "n_ubatch", "n_parallel")
"""Fingerprint keys that are engine settings, not weights or engine versions."""

_MIN_POSITIONS = 8
"""Fewer shared positions than this: too little evidence to fit a temperature."""
_T_GRID = np.geomspace(0.2, 5.0, 257)


class Adjustment(BaseModel):
    """One parameter to change, to what, and why."""

    parameter: str
    current: float | int | bool | str | None
    suggested: float | int | bool | str
    reason: str


def _top(position: dict[str, Any]) -> list[float]:
    return [float(lp) for _, lp in position.get("top") or []]


def _entropy(logps: np.ndarray, t: float) -> float:
    x = logps / t
    x = x - x.max()
    p = np.exp(x)
    p = p / p.sum()
    return float(-(p * np.log(np.clip(p, 1e-12, None))).sum())


def _shared(
    old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> list[tuple[list[float], list[float]]]:
    """Top-k logprobs of both runs at each position of their shared prefix."""
    pairs = []
    for a, b in zip(old, new, strict=False):
        if a.get("token") != b.get("token"):
            break
        ta, tb = _top(a), _top(b)
        if len(ta) >= 2 and len(tb) >= 2:
            pairs.append((ta, tb))
    return pairs


def _fit_temperature(
    pairs: Sequence[tuple[list[float], list[float]]],
) -> tuple[float, float, float]:
    """(T, recorded mean entropy, new mean entropy at T=1)."""
    olds = [np.array(a, dtype=np.float64) for a, _ in pairs]
    news = [np.array(b, dtype=np.float64) for _, b in pairs]
    target = float(np.mean([_entropy(a, 1.0) for a in olds]))
    now = float(np.mean([_entropy(b, 1.0) for b in news]))
    gaps = [abs(float(np.mean([_entropy(b, float(t)) for b in news])) - target) for t in _T_GRID]
    return float(_T_GRID[int(np.argmin(gaps))]), target, now


def _nucleus_mass(pairs: Sequence[tuple[list[float], list[float]]], top_p: float) -> float | None:
    """Mean mass the new run gives the tokens that made up the recorded nucleus."""
    masses = []
    for a, b in pairs:
        pa = np.exp(np.array(sorted(a, reverse=True)))
        cum = np.cumsum(pa)
        if cum[-1] < top_p:
            continue  # the recorded nucleus reaches past the top-k we kept
        n = int(np.searchsorted(cum, top_p) + 1)
        pb = np.exp(np.array(sorted(b, reverse=True)))
        masses.append(float(pb[:n].sum()))
    return float(np.mean(masses)) if len(masses) >= _MIN_POSITIONS else None


def _repetition(text: str) -> float:
    words = text.split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams)


def _is_json(text: str) -> bool:
    try:
        json.loads(text.strip())
    except ValueError:
        return False
    return True


def recommend(
    recorded: Sequence[dict[str, Any]],
    now: Sequence[dict[str, Any]],
    sampling: Sampling,
    fingerprint_changes: dict[str, list[Any]],
) -> list[Adjustment]:
    """Adjustments for a drifted check.

    ``recorded`` and ``now``: per prompt ``{"text", "tokens"}`` (tokens as stored by
    the canary: ``{"token", "logprob", "top": [[token, logprob], ...]}``).
    """
    out: list[Adjustment] = []
    pairs = [
        p for r, n in zip(recorded, now, strict=True) for p in _shared(r["tokens"], n["tokens"])
    ]
    if len(pairs) >= _MIN_POSITIONS:
        t, h_old, h_new = _fit_temperature(pairs)
        if abs(math.log(t)) > math.log(1.1):
            shape = "flatter" if t < 1 else "sharper"
            current = sampling.temperature
            suggested: float | str = (
                round(current * t, 3) if current is not None else f"{t:.2f} × the engine default"
            )
            out.append(
                Adjustment(
                    parameter="sampling.temperature",
                    current=current,
                    suggested=suggested,
                    reason=(
                        f"the new build's token distributions are {shape}: mean top-k entropy "
                        f"{h_new:.3f} vs {h_old:.3f} recorded over {len(pairs)} shared "
                        f"positions; scaling by T={t:.2f} restores the recorded entropy"
                    ),
                )
            )
        if sampling.top_p is not None:
            mass = _nucleus_mass(pairs, sampling.top_p)
            if mass is not None and abs(mass - sampling.top_p) > 0.02:
                out.append(
                    Adjustment(
                        parameter="sampling.top_p",
                        current=sampling.top_p,
                        suggested=round(min(max(mass, 0.05), 1.0), 3),
                        reason=(
                            f"the tokens of the recorded top_p={sampling.top_p} nucleus now "
                            f"hold {mass:.3f} of the mass on average"
                        ),
                    )
                )
    rep_old = [_repetition(r["text"]) for r in recorded]
    rep_new = [_repetition(n["text"]) for n in now]
    if rep_old and (sum(rep_new) - sum(rep_old)) / len(rep_old) >= 0.05:
        current_rp = sampling.repeat_penalty
        out.append(
            Adjustment(
                parameter="sampling.repeat_penalty",
                current=current_rp,
                suggested=round((current_rp or 1.0) + 0.1, 2),
                reason=(
                    f"answers repeat their own 3-grams more: {sum(rep_new) / len(rep_new):.2f} "
                    f"vs {sum(rep_old) / len(rep_old):.2f} recorded"
                ),
            )
        )
    broken = sum(
        _is_json(r["text"]) and not _is_json(n["text"]) for r, n in zip(recorded, now, strict=True)
    )
    if broken and not sampling.grammar:
        out.append(
            Adjustment(
                parameter="sampling.grammar",
                current=False,
                suggested=True,
                reason=f"{broken} answer(s) that were valid JSON no longer parse",
            )
        )
    engine = {k: v for k, v in fingerprint_changes.items() if k in ENGINE_KEYS}
    if engine and len(engine) == len(fingerprint_changes):
        pins = ", ".join(f"{k}={old}" for k, (old, _) in sorted(engine.items()))
        out.append(
            Adjustment(
                parameter="engine_options",
                current=", ".join(f"{k}={new}" for k, (_, new) in sorted(engine.items())),
                suggested=pins,
                reason=(
                    "only engine settings changed (same weights and engine): batch sizes and "
                    "threads change the floating-point reduction order; pin the recorded values "
                    "if answers must replay exactly"
                ),
            )
        )
    return out
