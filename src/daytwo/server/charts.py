"""Small server-side SVG charts (no JavaScript library, nothing from a CDN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["bar_chart", "interval_chart", "line_chart", "sparkline"]

_W, _H, _PAD = 600, 180, 28
# Colours with a contrast ratio of at least 3:1 against the white cards (WCAG 1.4.11 for
# graphics); text colours live in style.css, checked with axe-core in the browser tests.
PALETTE = ["#2f6fdf", "#a86100", "#1d7f72", "#7a4fd6", "#c0392b"]


def bar_chart(points: Sequence[tuple[str, float]], *, unit: str = "") -> str:
    """Vertical bars, one per (label, value)."""
    if not points:
        return '<p class="muted">No data yet.</p>'
    top = max(v for _, v in points) or 1.0
    n = len(points)
    step = (_W - 2 * _PAD) / n
    summary = f"bar chart of {n} values, highest {top:g}{unit}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}">'
    ]
    for i, (label, value) in enumerate(points):
        h = (_H - 2 * _PAD) * value / top
        x = _PAD + i * step + step * 0.15
        y = _H - _PAD - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {value:g}{escape(unit)}</title></rect>'
        )
        if n <= 16 or i % max(1, n // 8) == 0:
            parts.append(f'<text x="{x:.1f}" y="{_H - 8}">{escape(label[-5:])}</text>')
    parts.append(f'<text x="4" y="14">{top:g}{escape(unit)}</text></svg>')
    return "".join(parts)


def line_chart(series: Mapping[str, Sequence[float]], *, lo: float = 0.0, hi: float = 1.0) -> str:
    """One polyline per named series over equally spaced points, with a legend."""
    if not series or not any(series.values()):
        return '<p class="muted">No data yet.</p>'
    span = (hi - lo) or 1.0
    summary = "line chart of " + ", ".join(
        f"{name} (last {values[-1]:.3f})" for name, values in series.items() if values
    )
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}">'
    ]
    legend = []
    for k, (name, values) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        n = max(len(values) - 1, 1)
        pts = " ".join(
            f"{_PAD + i * (_W - 2 * _PAD) / n:.1f},"
            f"{_H - _PAD - (_H - 2 * _PAD) * (v - lo) / span:.1f}"
            for i, v in enumerate(values)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        for i, v in enumerate(values):
            x = _PAD + i * (_W - 2 * _PAD) / n
            y = _H - _PAD - (_H - 2 * _PAD) * (v - lo) / span
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)}: {v:.3f}</title></circle>"
            )
        legend.append(f'<span><i class="swatch c{k % len(PALETTE)}"></i>{escape(name)}</span>')
    parts.append(f'<text x="4" y="14">{hi:g}</text><text x="4" y="{_H - _PAD}">{lo:g}</text>')
    parts.append("</svg>")
    return "".join(parts) + f'<p class="legend muted">{"".join(legend)}</p>'


def sparkline(values: Sequence[float | None], *, label: str, unit: str = "", color: int = 0) -> str:
    """A small inline trend (120x28) of equally spaced values; gaps where a value is None.

    ``label`` names the series for screen readers (``role="img"`` with an ``aria-label``
    holding the first, last and highest value).
    """
    known = [v for v in values if v is not None]
    if not known:
        return '<span class="muted">—</span>'
    w, h, pad = 120, 28, 2
    top = max(known) or 1.0
    n = max(len(values) - 1, 1)
    colour = PALETTE[color % len(PALETTE)]
    summary = f"{label}: first {known[0]:g}{unit}, last {known[-1]:g}{unit}, max {top:g}{unit}"
    parts = [
        f'<svg class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
    ]
    run: list[str] = []
    segments: list[list[str]] = []
    for i, v in enumerate(values):
        if v is None:
            if run:
                segments.append(run)
            run = []
            continue
        x = pad + i * (w - 2 * pad) / n
        y = h - pad - (h - 2 * pad) * v / top
        run.append(f"{x:.1f},{y:.1f}")
    if run:
        segments.append(run)
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="{colour}"/>')
        else:
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                f'points="{" ".join(seg)}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def interval_chart(
    rows: Sequence[tuple[str, float, float, float]], *, threshold: float | None = None
) -> str:
    """Confidence intervals on a shared axis: one row per (label, low, estimate, high).

    Draws zero (and ``-threshold``, the largest allowed drop, when given) as vertical
    lines, so a gate's verdict can be read off: an interval wholly left of the threshold
    line fails.
    """
    if not rows:
        return '<p class="muted">No paired cases to compare.</p>'
    lo = min([r[1] for r in rows] + [0.0] + ([-threshold] if threshold else []))
    hi = max([r[3] for r in rows] + [0.0])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.08 * span, hi + 0.08 * span
    span = hi - lo
    left, right, row_h = 170, 20, 26
    w = 600
    height = 30 + row_h * len(rows)

    def x_of(v: float) -> float:
        return left + (w - left - right) * (v - lo) / span

    parts = [
        f'<svg class="chart interval" viewBox="0 0 {w} {height}" role="img" '
        f'aria-label="paired bootstrap intervals">'
    ]
    for end in (lo, hi):  # the axis's two ends, so widths can be read off
        if abs(x_of(end) - x_of(0.0)) < 60:
            continue  # it would overwrite the 0
        anchor = "start" if end == lo else "end"
        parts.append(
            f'<text x="{x_of(end):.1f}" y="{height - 4}" text-anchor="{anchor}">{end:+.3g}</text>'
        )
    zero = x_of(0.0)
    parts.append(
        f'<line x1="{zero:.1f}" y1="4" x2="{zero:.1f}" y2="{height - 18}" stroke="#66707a" '
        f'stroke-dasharray="3 3"/><text x="{zero - 4:.1f}" y="{height - 4}">0</text>'
    )
    if threshold:
        tx = x_of(-threshold)
        parts.append(
            f'<line x1="{tx:.1f}" y1="4" x2="{tx:.1f}" y2="{height - 18}" stroke="{PALETTE[4]}" '
            f'stroke-dasharray="2 2"/><text x="{tx - 30:.1f}" y="{height - 4}">'
            f"-{threshold:g}</text>"
        )
    for i, (label, low, est, high) in enumerate(rows):
        y = 16 + i * row_h
        worse = high < -(threshold or 0.0)
        colour = PALETTE[4] if worse else PALETTE[0]
        parts.append(
            f'<g class="interval-row" data-label="{escape(label)}"><text x="4" y="{y + 4}">'
            f"{escape(label[:28])}</text>"
            f'<line x1="{x_of(low):.1f}" y1="{y}" x2="{x_of(high):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{x_of(est):.1f}" cy="{y}" r="4" fill="{colour}">'
            f"<title>{escape(label)}: {est:+.4f} [{low:+.4f}, {high:+.4f}]</title></circle></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
