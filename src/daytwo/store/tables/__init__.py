"""Tables of every layer. Importing this package registers them all on ``Base.metadata``.

Each layer owns one module here and one Alembic branch (``branch_labels``) in
``store/migrations/versions`` whose first revision depends on ``0001_core``.
"""

from daytwo.store.tables import (
    core,
    evals,
    gateway,
    knowledge,
    knowledge_maintenance,
    models,
    runtime,
    server,
    tracing,
)

__all__ = [
    "core",
    "evals",
    "gateway",
    "knowledge",
    "knowledge_maintenance",
    "models",
    "runtime",
    "server",
    "tracing",
]
