"""Deterministic typo perturbation: how a hurried customer types the same question.

Lower-cases, drops most punctuation, and misspells some words (swap two letters,
drop one, double one, hit a neighbouring key). Words carrying digits (order ids,
amounts) are kept intact so the case still names the same order.
"""

from __future__ import annotations

import random
import re

__all__ = ["perturb"]

_NEIGHBOURS = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc",
    "g": "ftyhbv", "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop",
    "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz",
    "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}  # fmt: skip
_WORD = re.compile(r"\S+")


def _misspell(word: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if len(letters) < 4:
        return word
    i = rng.choice(letters[1:-1])
    op = rng.randrange(4)
    if op == 0 and i + 1 < len(word) and word[i + 1].isalpha() and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:
        return word[:i] + word[i + 1 :]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    keys = _NEIGHBOURS.get(word[i].lower())
    return word[:i] + rng.choice(keys) + word[i + 1 :] if keys else word[:i] + word[i + 1 :]


def perturb(text: str, seed: int, *, rate: float = 0.35, min_changes: int = 2) -> str:
    """``text`` with typos; the same ``seed`` always gives the same result."""
    rng = random.Random(seed)
    words = _WORD.findall(text)
    out = []
    for w in words:
        if any(ch.isdigit() for ch in w) or "@" in w:
            out.append(w)
            continue
        out.append(w.lower().rstrip("?.!,;:").replace("'", ""))
    candidates = [i for i, w in enumerate(out) if sum(ch.isalpha() for ch in w) >= 4]
    rng.shuffle(candidates)
    want = max(min_changes, round(rate * len(candidates)))
    for i in candidates[:want]:
        out[i] = _misspell(out[i], rng)
    return " ".join(w for w in out if w)
