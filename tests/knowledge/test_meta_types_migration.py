"""Migration 0111 types the metadata rows written before it from each document's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import daytwo.store.migrate
from daytwo.store import Store


def test_existing_metadata_is_typed_by_the_migration(db_url: str) -> None:
    store = Store(db_url)
    try:
        cfg = Config()
        cfg.set_main_option(
            "script_location", str(Path(daytwo.store.migrate.__file__).with_name("migrations"))
        )
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0110_knowledge_maintenance")  # before typed metadata
        meta = {"year": 2020, "lang": "de", "day": "2024-01-02", "ok": True, "code": "7"}
        with store.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO kb_documents (collection, doc_id, tenant, source, title, text, "
                    "content_hash, metadata, private, created_at, updated_at) VALUES "
                    "('c', 'd1', 'default', 'api', '', 'x', 'h', :m, false, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ).bindparams(sa.bindparam("m", type_=sa.JSON())),
                {"m": meta},
            )
            for key, value in meta.items():
                text = json.dumps(value) if isinstance(value, bool) else str(value)
                conn.execute(
                    sa.text(
                        "INSERT INTO kb_doc_meta (collection, doc_id, key, value) "
                        "VALUES ('c', 'd1', :k, :v)"
                    ),
                    {"k": key, "v": text},
                )
        assert "0111_knowledge_meta_types" in store.upgrade()
        with store.engine.connect() as conn:
            rows = {
                r[0]: (r[1], r[2])
                for r in conn.execute(sa.text("SELECT key, kind, num FROM kb_doc_meta"))
            }
        assert rows == {
            "year": ("num", 2020.0),
            "lang": ("str", None),
            "day": ("date", 1704153600.0),
            "ok": ("bool", None),
            "code": ("str", None),
        }
    finally:
        store.dispose()
