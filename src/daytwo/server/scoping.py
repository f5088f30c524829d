"""A run resolves every name inside its tenant: tools, capabilities, collections.

The runtime's services are wrapped so that a step of a run started by a key of
tenant T sees only T's tools and collections (owned or granted): a capability
chooses among them only, a tool or collection of another tenant does not exist
(the step fails exactly as for a name that exists nowhere). The tenant comes from
the run's recorded principal (:func:`daytwo.runtime.acting.current_principal`),
so replays and recoveries on any worker resolve the same way.

Retrieval runs as the key's principal, or -- when the caller started the run on behalf
of an end user (``on_behalf_of``) -- with that user's principal and groups.

Agent specs registered over the API are checked the same way up front: a spec
that names another tenant's tool or collection is refused like one naming a tool
that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from daytwo.exceptions import NotFoundError, SpecError
from daytwo.runtime.acting import current_principal, current_run_id
from daytwo.runtime.protocols import Retriever, ToolInvoker, ToolOutcome
from daytwo.runtime.spec import AgentSpec, MapStep, PlanStep, RetrievalStep, ToolStep
from daytwo.runtime.steps import Services
from daytwo.server.ownership import check_visible, claimant, visible
from daytwo.server.tenancy import tenant_of
from daytwo.store import Store
from daytwo.store.tables.server import RunSubject

__all__ = [
    "TenantRetriever",
    "TenantTools",
    "check_spec_references",
    "record_run_subject",
    "run_subject",
    "scope_services",
]


def _run_tenant() -> str:
    return tenant_of(current_principal())


def _tool_name(ref: str) -> str:
    return ref.split("@", 1)[0]


class TenantTools:
    """A ToolInvoker that only knows the run's tenant's tools."""

    def __init__(self, inner: ToolInvoker, store: Store) -> None:
        self.inner = inner
        self.store = store

    def tools(self, capability: str | None = None) -> list[str]:
        names = self.inner.tools(capability)
        return visible(self.store, "tool", names, _run_tenant())

    def call(
        self, tool: str, arguments: dict[str, Any], *, agent: str, idempotency_key: str
    ) -> ToolOutcome:
        check_visible(self.store, "tool", _tool_name(tool), _run_tenant(), "tool")
        return self.inner.call(tool, arguments, agent=agent, idempotency_key=idempotency_key)


class TenantRetriever:
    """A Retriever that only searches the run's tenant's collections."""

    def __init__(self, inner: Retriever, store: Store) -> None:
        self.inner = inner
        self.store = store

    def search(
        self,
        collection: str,
        query: str,
        *,
        principal: str,
        k: int,
        mode: str,
        groups: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``groups`` is ignored: a run's groups are the recorded end user's, or none."""
        check_visible(self.store, "collection", collection, _run_tenant(), "collection")
        subject = run_subject(self.store, current_run_id())
        if subject is None:  # the key's own principal
            hits = self.inner.search(collection, query, principal=principal, k=k, mode=mode)
        else:  # on behalf of the end user the caller named
            hits = self.inner.search(
                collection, query, principal=subject[0], k=k, mode=mode, groups=subject[1]
            )
        return hits


def record_run_subject(store: Store, run_id: str, principal: str, groups: Sequence[str]) -> None:
    """Record that run ``run_id`` acts on behalf of ``principal`` with ``groups``."""
    with store.session(write=True) as s:
        s.add(RunSubject(run_id=run_id, principal=principal, groups=list(groups)))


def run_subject(store: Store, run_id: str | None) -> tuple[str, list[str]] | None:
    """(principal, groups) a run retrieves as, when started on behalf of an end user."""
    if run_id is None:
        return None
    with store.session() as s:
        row = s.get(RunSubject, run_id)
        return (row.principal, list(row.groups)) if row is not None else None


def scope_services(services: Services, store: Store) -> Services:
    """``services`` with tools and retrieval resolved inside each run's tenant.

    The gateway behind the tools (a :class:`~daytwo.runtime.adapters.GatewayTools`)
    refuses to run a code backend of a tool a tenant registered, and lets it read only
    its tenant's credentials.
    """
    from daytwo.runtime.adapters import GatewayTools

    tools = services.tools.inner if isinstance(services.tools, TenantTools) else services.tools
    if isinstance(tools, GatewayTools) and tools.gateway.registered_by is None:
        tools.gateway.registered_by = lambda name: claimant(store, "tool", name)
    if services.tools is not None and not isinstance(services.tools, TenantTools):
        services.tools = TenantTools(services.tools, store)
    if services.retriever is not None and not isinstance(services.retriever, TenantRetriever):
        services.retriever = TenantRetriever(services.retriever, store)
    return services


def check_spec_references(
    store: Store,
    spec: AgentSpec,
    tenant: str,
    model_profiles: Collection[str] | None = None,
) -> None:
    """SpecError when a step names a tool or collection ``tenant`` cannot see.

    The message is the one for a name that exists nowhere. Templated collection
    names are checked when the step runs. With ``model_profiles`` (the server's
    profile names) the agent's and its steps' ``model`` must be one of them: a model
    is a server profile, never another tenant's gateway route.
    """
    if model_profiles is not None:
        models = [("the agent", spec.model)]
        models += [(f"step {s.id!r}", getattr(s, "model", None)) for s in spec.steps]
        models += [(f"step {s.id!r}", getattr(s, "model", None)) for s in spec.degraded]
        for where, name in models:
            if name is not None and name not in model_profiles:
                raise SpecError(
                    f"agent {spec.name!r}: {where} names unknown model profile {name!r}",
                    hint="GET /v1/models lists the server's model profiles",
                )
    for step in (*spec.steps, *spec.degraded):
        tools: list[str] = []
        if isinstance(step, (ToolStep, MapStep)) and step.tool is not None:
            tools.append(_tool_name(step.tool))
        if isinstance(step, PlanStep):
            tools.extend(_tool_name(t) for t in step.tools)
        for name in tools:
            if not visible(store, "tool", [name], tenant):
                raise SpecError(
                    f"agent {spec.name!r}: step {step.id!r} names unknown tool {name!r}",
                    hint="register the tool first (GET /api/v1/tools lists yours)",
                )
        if isinstance(step, RetrievalStep) and "{{" not in step.collection:
            try:
                check_visible(store, "collection", step.collection, tenant, "collection")
            except NotFoundError:
                raise SpecError(
                    f"agent {spec.name!r}: step {step.id!r} names unknown collection "
                    f"{step.collection!r}",
                    hint="create it first (GET /api/v1/knowledge/collections lists yours)",
                ) from None
