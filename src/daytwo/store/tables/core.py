"""Core tables: facts about this daytwo instance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, UTCDateTime, utcnow

__all__ = ["InstanceInfo"]


class InstanceInfo(Base):
    """Key/value facts about the instance (its id, when it was created)."""

    __tablename__ = "instance_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
