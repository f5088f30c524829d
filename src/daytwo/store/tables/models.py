"""Model-layer tables: drift-canary records, their outputs, and the checks run against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = ["CanaryCheck", "CanaryOutput", "CanaryRecord"]


class CanaryRecord(Base):
    """One recorded run of the canary prompt set on a profile, with its engine fingerprint."""

    __tablename__ = "models_canary_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    profile: Mapped[str] = mapped_column(String(128), index=True)
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fingerprint_hash: Mapped[str] = mapped_column(String(64))
    prompt_set_hash: Mapped[str] = mapped_column(String(64))
    top_k: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CanaryOutput(Base):
    """What the model answered to one canary prompt: text and per-token top-k logprobs."""

    __tablename__ = "models_canary_outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("models_canary_records.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[list[Any]] = mapped_column(JSONType)


class CanaryCheck(Base):
    """One check of a profile against a record: the rates, the verdict, what changed."""

    __tablename__ = "models_canary_checks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(32), index=True)
    profile: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSONType)
    exact_match_rate: Mapped[float] = mapped_column(Float)
    logprob_divergence: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
