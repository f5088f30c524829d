"""Egress policy: which hosts a tool backend may reach, checked at registration and connect time.

A target is refused unless every address its host resolves to is globally routable,
or the host (by name) or the address (by CIDR) is on the allow-list
(``DAYTWO_EGRESS_ALLOW`` / ``Gateway(ssrf_allow=...)``). "Not global" covers the IANA
special-purpose blocks: loopback, private, shared address space (100.64.0.0/10, where
cloud metadata services also live), link-local (169.254.0.0/16), documentation,
benchmarking, multicast and reserved ranges; for IPv6 also ULA, link-local, the
IPv4 transition forms (6to4 ``2002::/16``, Teredo ``2001::/32``, NAT64 ``64:ff9b::/96``
and ``64:ff9b:1::/48``, IPv4-compatible ``::/96``) and IPv4-mapped addresses, which are
judged by the IPv4 address they carry.

The check and the connection use the same resolution: :func:`pinned_client` builds an
httpx client whose network backend resolves the host once, checks every address and
connects to a checked address. TLS still verifies the certificate against the host
name (SNI) and the ``Host`` header is unchanged, so a DNS answer that changes between
check and connect (rebinding) cannot send a request anywhere unchecked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from daytwo.exceptions import InputError, SsrfBlocked

if TYPE_CHECKING:
    import httpx2

__all__ = ["EgressPolicy", "pinned_async_client", "pinned_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        # IPv4 special-purpose blocks (RFC 6890 and successors)
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IPv6 special-purpose blocks, the IPv4 transition forms among them
        "::/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _parse_ip(host: str) -> IPAddress | None:
    """The address a literal host stands for, legacy IPv4 forms (``127.1``, ``0x7f.1``) too."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


class EgressPolicy:
    """Refuses targets outside the global address space unless allow-listed.

    ``allow`` holds host names (``inventory.internal``; ``.corp.example`` allows every
    subdomain) and addresses or CIDRs (``10.20.0.0/16``, ``127.0.0.1``).
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self._hosts: set[str] = set()
        self._suffixes: list[str] = []
        self._nets: list[IPNetwork] = []
        for raw in allow:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                self._nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if entry.startswith(("*.", ".")):
                    self._suffixes.append("." + entry.lstrip("*."))
                else:
                    self._hosts.add(entry)

    @property
    def allow(self) -> list[str]:
        """The allow-list entries (names, then networks)."""
        return (
            sorted(self._hosts) + [f"*{s}" for s in self._suffixes] + [str(n) for n in self._nets]
        )

    def host_allowed(self, host: str) -> bool:
        """True when ``host`` is allow-listed by name."""
        host = host.lower().rstrip(".")
        return host in self._hosts or any(host.endswith(s) for s in self._suffixes)

    def address_problem(self, addr: IPAddress) -> str | None:
        """Why ``addr`` may not be reached (None when it may)."""
        if any(addr in net for net in self._nets):
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return self.address_problem(addr.ipv4_mapped)
        for net in _BLOCKED:
            if addr.version == net.version and addr in net:
                return f"in the non-global range {net}"
        if not addr.is_global:
            return "not a global address"
        return None

    def _refuse(self, host: str, addr: IPAddress, problem: str, verb: str) -> SsrfBlocked:
        return SsrfBlocked(
            f"backend host {host!r} {verb} the internal address {addr} ({problem})",
            hint="allow-list the host or its network (DAYTWO_EGRESS_ALLOW or --allow-host) "
            "if this is intended",
        )

    def _split(self, url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InputError(
                f"backend URL {url!r} is malformed: {exc}", hint="fix the url"
            ) from exc
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InputError(
                f"backend URL {url!r} is not an http(s) URL",
                hint="use an http:// or https:// URL with a host",
            )
        return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)

    def check_static(self, url: str) -> None:
        """What can be checked without the network: the scheme, a literal address, local names.

        Used when a tool is registered; :meth:`check` and the pinned connection
        repeat the whole check at call time.
        """
        host, _ = self._split(url)
        if self.host_allowed(host):
            return
        addr = _parse_ip(host)
        if addr is not None:
            problem = self.address_problem(addr)
            if problem is not None:
                raise self._refuse(host, addr, problem, "is")
        elif host.rstrip(".") in _LOCAL_NAMES or host.rstrip(".").endswith(".localhost"):
            raise self._refuse(
                host, ipaddress.ip_address("127.0.0.1"), "the loopback host", "names"
            )

    def check_registration(self, url: str) -> None:
        """The check at registration: static, then the current DNS answer when there is one.

        A name that does not resolve yet is accepted (it is checked again at call time).
        """
        self.check_static(url)
        host, port = self._split(url)
        if self.host_allowed(host) or _parse_ip(host) is not None:
            return
        try:
            self.resolve(host, port)
        except _Unresolved:
            return

    def check(self, url: str) -> None:
        """The whole check for ``url`` (resolving its host); SsrfBlocked or InputError."""
        self.check_static(url)
        host, port = self._split(url)
        if not self.host_allowed(host):
            try:
                self.resolve(host, port)
            except _Unresolved as exc:
                raise SsrfBlocked(
                    f"backend host {host!r} does not resolve", hint="check the tool's url"
                ) from exc

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, each checked; SsrfBlocked when any is refused."""
        literal = _parse_ip(host)
        addrs = [str(literal)] if literal is not None else self.lookup(host, port)
        if not self.host_allowed(host):
            for text in addrs:
                addr = ipaddress.ip_address(text.split("%", 1)[0])
                problem = self.address_problem(addr)
                if problem is not None:
                    verb = "is" if literal is not None else "resolves to"
                    raise self._refuse(host, addr, problem, verb)
        return addrs

    def lookup(self, host: str, port: int) -> list[str]:
        """The DNS answer for ``host`` (the one place names are resolved)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise _Unresolved(host) from exc
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Unresolved(Exception):
    pass


class _PinnedBackend(httpcore.NetworkBackend):
    """Resolves once, checks every address, connects to a checked one."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addrs = self.policy.resolve(host, port)
        except _Unresolved as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}") from exc
        last: Exception | None = None
        for addr in addrs:
            try:
                return self._inner.connect_tcp(
                    addr, port, timeout, local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through :class:`_PinnedBackend` (no proxies)."""

    def __init__(self, policy: EgressPolicy, *, verify: Any = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx builds its connection pool without a way to pass a network backend;
        # replace the pool with the same one over the pinned backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            network_backend=_PinnedBackend(policy),
        )


def pinned_client(policy: EgressPolicy, **kwargs: Any) -> httpx.Client:
    """An httpx client that only connects to addresses ``policy`` allows (no redirects)."""
    kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=PinnedTransport(policy), trust_env=False, **kwargs)


def pinned_async_client(policy: EgressPolicy, **kwargs: Any) -> httpx2.AsyncClient:
    """The same for the MCP SDK's async client (``httpx2``)."""
    import httpcore2
    import httpx2

    class _AsyncPinnedBackend(httpcore2.AsyncNetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore2.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.AsyncNetworkStream:
            import anyio

            try:
                addrs: Sequence[str] = await anyio.to_thread.run_sync(policy.resolve, host, port)
            except _Unresolved as exc:
                raise httpcore2.ConnectError(f"cannot resolve {host!r}") from exc
            last: Exception | None = None
            for addr in addrs:
                try:
                    return await self._inner.connect_tcp(
                        addr, port, timeout, local_address, socket_options=socket_options
                    )
                except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                    last = exc
            assert last is not None
            raise last

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    transport = httpx2.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=httpx2.create_ssl_context(trust_env=False),
        network_backend=_AsyncPinnedBackend(),
    )
    kwargs.setdefault("follow_redirects", False)
    return httpx2.AsyncClient(transport=transport, trust_env=False, **kwargs)
