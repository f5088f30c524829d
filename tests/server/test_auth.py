"""API keys: stored hashed, roles ordered, revocation, dashboard sessions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from daytwo.exceptions import InputError, NotAuthenticated, NotFoundError, PermissionDenied
from daytwo.server.auth import KeyStore, role_at_least
from daytwo.store import Store
from daytwo.store.tables.server import ApiKey


def test_key_is_shown_once_and_stored_hashed(store: Store) -> None:
    ks = KeyStore(store)
    info, key = ks.create(role="operator", tenant="acme", name="ci")
    assert key.startswith(f"dt_{info.id}_")
    secret = key.split("_", 2)[2]
    with store.session() as s:
        row = s.get(ApiKey, info.id)
        assert row is not None
        dumped = " ".join(str(v) for v in s.execute(sa.select(ApiKey.__table__)).one())
    assert secret not in dumped
    assert len(row.secret_sha256) == 64
    principal = ks.authenticate(key)
    assert (principal.tenant, principal.role, principal.name) == ("acme", "operator", "ci")
    assert all(secret not in repr(k) for k in ks.list())


def test_wrong_malformed_and_revoked_keys_are_refused(store: Store) -> None:
    ks = KeyStore(store)
    info, key = ks.create(role="admin", tenant="acme")
    ks.create(role="admin", tenant="acme", name="spare")  # the last admin cannot be revoked
    with pytest.raises(NotAuthenticated, match="malformed"):
        ks.authenticate("hello")
    with pytest.raises(NotAuthenticated, match="not valid"):
        ks.authenticate(key[:-4] + "AAAA")
    ks.revoke(info.id)
    with pytest.raises(NotAuthenticated, match="revoked"):
        ks.authenticate(key)


def test_revoke_is_tenant_scoped(store: Store) -> None:
    ks = KeyStore(store)
    info, key = ks.create(role="viewer", tenant="acme")
    with pytest.raises(NotFoundError):
        ks.revoke(info.id, tenant="globex")
    assert ks.authenticate(key).tenant == "acme"
    with pytest.raises(NotFoundError):
        ks.revoke("0" * 32)


def test_bad_role_and_tenant_are_input_errors(store: Store) -> None:
    ks = KeyStore(store)
    with pytest.raises(InputError, match="unknown role"):
        ks.create(role="root", tenant="acme")
    with pytest.raises(InputError, match="tenant"):
        ks.create(role="admin", tenant="no spaces please")
    assert ks.list() == []


def test_roles_are_ordered(store: Store) -> None:
    assert role_at_least("admin", "operator")
    assert role_at_least("operator", "operator")
    assert not role_at_least("viewer", "operator")
    assert not role_at_least("nobody", "viewer")
    _, key = KeyStore(store).create(role="viewer", tenant="acme")
    viewer = KeyStore(store).authenticate(key)
    viewer.require("viewer")
    with pytest.raises(PermissionDenied, match="needs 'operator'"):
        viewer.require("operator")


def test_sessions_follow_their_key(store: Store) -> None:
    ks = KeyStore(store)
    info, key = ks.create(role="admin", tenant="acme")
    ks.create(role="admin", tenant="acme", name="spare")  # the last admin cannot be revoked
    principal, token = ks.open_session(key)
    assert ks.session_principal(token) == principal
    ks.close_session(token)
    with pytest.raises(NotAuthenticated):
        ks.session_principal(token)
    _, token2 = ks.open_session(key)
    ks.revoke(info.id)
    with pytest.raises(NotAuthenticated):
        ks.session_principal(token2)


def test_a_verified_key_is_not_read_again(store: Store) -> None:
    ks = KeyStore(store)
    _, key = ks.create(role="viewer", tenant="acme")
    ks.authenticate(key)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert ks.authenticate(key).tenant == "acme"
        # A wrong secret for the same key id is never served from the cache.
        with pytest.raises(NotAuthenticated, match="not valid"):
            ks.authenticate(key[:-4] + "AAAA")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    reads = [q for q in statements if "FROM server_api_keys" in q]
    assert len(reads) == 1, statements  # only the wrong secret's lookup


def test_revocation_is_immediate_in_the_process_and_bounded_across_processes(
    store: Store,
) -> None:
    ks = KeyStore(store)
    ks.create(role="admin", tenant="acme", name="spare")
    info, key = ks.create(role="admin", tenant="acme")
    gateway_keys = KeyStore(store)  # another KeyStore of this process (model gateway, MCP)
    assert gateway_keys.authenticate(key).tenant == "acme"
    # Another process: its own store object, hence its own cache.
    other = Store(store.url)
    try:
        other_keys = KeyStore(other, verified_ttl=0.5)
        assert other_keys.authenticate(key).tenant == "acme"
        ks.revoke(info.id)
        with pytest.raises(NotAuthenticated, match="revoked"):
            gateway_keys.authenticate(key)  # same process: refused at once
        with pytest.raises(NotAuthenticated, match="revoked"):
            ks.authenticate(key)
        # The other process trusts its verification for at most verified_ttl seconds.
        import time

        time.sleep(0.6)
        with pytest.raises(NotAuthenticated, match="revoked"):
            other_keys.authenticate(key)
    finally:
        other.dispose()
