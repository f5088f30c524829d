"""Helpers shared by the server tests."""

from __future__ import annotations

from dataclasses import dataclass

from daytwo.server import KeyStore
from daytwo.store import Store


@dataclass(frozen=True)
class Keys:
    """Full keys of each role in tenant ``acme`` and an admin and viewer of tenant ``globex``."""

    admin: str
    operator: str
    viewer: str
    other_admin: str
    other_viewer: str

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def make_keys(store: Store) -> Keys:
    ks = KeyStore(store)
    return Keys(
        admin=ks.create(role="admin", tenant="acme", name="acme admin")[1],
        operator=ks.create(role="operator", tenant="acme", name="acme operator")[1],
        viewer=ks.create(role="viewer", tenant="acme", name="acme viewer")[1],
        other_admin=ks.create(role="admin", tenant="globex", name="globex admin")[1],
        other_viewer=ks.create(role="viewer", tenant="globex", name="globex viewer")[1],
    )
