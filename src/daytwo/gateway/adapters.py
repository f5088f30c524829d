"""Apply an adapter: JMESPath field mapping, value maps, unit conversion, defaults."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from daytwo.exceptions import InputError
from daytwo.gateway.contracts import AdapterSpec

__all__ = ["CompiledAdapter"]


class CompiledAdapter:
    """An adapter with its JMESPath expressions compiled once."""

    def __init__(self, spec: AdapterSpec) -> None:
        self.spec = spec
        self._paths: dict[str, Any] = {}
        for name, expr in spec.mapping.items():
            try:
                self._paths[name] = jmespath.compile(expr)
            except JMESPathError as exc:
                raise InputError(
                    f"adapter mapping for {name!r} is not valid JMESPath: {expr!r}",
                    hint="fix the expression (see jmespath.org)",
                ) from exc

    def apply(self, raw: Any, fields: set[str] | None = None) -> dict[str, Any]:
        """The contract-shaped output; with ``fields``, only those fields are transformed.

        ``raw`` may be any JSON value: an array or a scalar answer is placed in the
        object by the mapping (JMESPath ``@`` is the whole answer).
        """
        spec = self.spec
        out = dict(raw) if isinstance(raw, dict) else {}
        if self._paths:
            for name, path in self._paths.items():
                if fields is None or name in fields:
                    out[name] = path.search(raw)
        for name, table in spec.value_maps.items():
            if fields is not None and name not in fields:
                continue
            value = out.get(name)
            if isinstance(value, (str, int, float, bool)) and str(value) in table:
                out[name] = table[str(value)]
        for name, conv in spec.units.items():
            if fields is not None and name not in fields:
                continue
            value = out.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = value * conv.factor + conv.offset
        for name, default in spec.defaults.items():
            if out.get(name) is None:
                out[name] = default
        return out
