"""Media fixtures for the tests: see :mod:`daytwo.testing.media` (shared with bench, quickstart)."""

from daytwo.testing.media import render_text, speak, transcode

__all__ = ["render_text", "speak", "transcode"]
