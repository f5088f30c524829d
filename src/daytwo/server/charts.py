"""Small server-side SVG charts (no JavaScript library, nothing from a CDN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["bar_chart", "line_chart"]

_W, _H, _PAD = 600, 180, 28
PALETTE = ["#2f6fdf", "#d08a2f", "#2f9f8f", "#7a4fd6", "#c0392b"]


def bar_chart(points: Sequence[tuple[str, float]], *, unit: str = "") -> str:
    """Vertical bars, one per (label, value)."""
    if not points:
        return '<p class="muted">No data yet.</p>'
    top = max(v for _, v in points) or 1.0
    n = len(points)
    step = (_W - 2 * _PAD) / n
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img">']
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
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="none" role="img">']
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
