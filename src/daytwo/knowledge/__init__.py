"""Knowledge layer: sources → documents → chunks → index generations.

Keyword (BM25) and vector (HNSW) search with hybrid fusion, always as a principal
whose ACL is enforced inside both searches. The database is the system of record;
ANN index files are derived from it. Start with :class:`KnowledgeBase`.
"""

from daytwo.knowledge.ann import AnnParams
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.embedders import (
    DEFAULT_EMBEDDER,
    Embedder,
    HashingEmbedder,
    get_embedder,
    register_embedder,
)
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.ingest import IngestReport
from daytwo.knowledge.search import MODES, Hit
from daytwo.knowledge.service import Document, KnowledgeBase
from daytwo.knowledge.source_types import Skipped

__all__ = [
    "DEFAULT_EMBEDDER",
    "MODES",
    "AnnParams",
    "ChunkingConfig",
    "Document",
    "Embedder",
    "FusionConfig",
    "HashingEmbedder",
    "Hit",
    "IngestReport",
    "KnowledgeBase",
    "Skipped",
    "get_embedder",
    "register_embedder",
]
