"""Knowledge maintenance tables: shadow migrations, shadow-read samples, ANN compaction state.

- ``kb_migrations``: one row per migration of a collection to a new index generation
  (embedder/chunking/ANN params). ``checkpoint`` is the last document id the backfill
  wrote; it is updated in the same transaction as that batch's chunks, so a crash
  (even ``kill -9``) resumes exactly where the last committed batch ended.
- ``kb_shadow_reads``: sampled live queries run on both generations: overlap@10 of the
  two result lists and both latencies. No query text is stored.
- ``kb_index_maintenance``: per generation, the write ``seq`` its ANN index was last
  compacted at (tombstones after it count towards the tombstone ratio) and how long
  that vacuum took.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, UTCDateTime, utcnow

__all__ = ["KbIndexMaintenance", "KbMigration", "KbShadowRead"]


class KbMigration(Base):
    """A shadow migration of a collection from one generation to another."""

    __tablename__ = "kb_migrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    source_generation: Mapped[str] = mapped_column(String(64))
    target_generation: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    checkpoint: Mapped[str | None] = mapped_column(String(512), nullable=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    shadow_read_rate: Mapped[float] = mapped_column(Float, default=0.1)
    canary_percent: Mapped[float] = mapped_column(Float, default=0.0)
    actor: Mapped[str] = mapped_column(String(255), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KbShadowRead(Base):
    """One sampled query run on both generations of a migration."""

    __tablename__ = "kb_shadow_reads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    migration: Mapped[str] = mapped_column(String(64))
    served: Mapped[str] = mapped_column(String(16))
    overlap: Mapped[float] = mapped_column(Float)
    active_ms: Mapped[float] = mapped_column(Float)
    shadow_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_kb_shadow_reads_migration", "migration"),
        {"sqlite_autoincrement": True},
    )


class KbIndexMaintenance(Base):
    """When a generation's ANN index was last compacted, at which write seq."""

    __tablename__ = "kb_index_maintenance"

    generation: Mapped[str] = mapped_column(String(64), primary_key=True)
    compacted_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    vectors: Mapped[int] = mapped_column(Integer, default=0)
    vacuum_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    vacuumed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
