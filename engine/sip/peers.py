"""Which source addresses may send SIP requests to the engine.

A carrier engine answers only its configured peers (trunks, PBXs, the
softswitch); anyone else gets 403 without a routing decision. ``open``
accepts everyone, for lab use. The answer per address is cached, since a
handful of peers send nearly all traffic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["LOOPBACK", "PeerFilter"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The default when a configuration names no peers: this machine only.
LOOPBACK = ("127.0.0.0/8", "::1/128")


class PeerFilter:
    """Accepts addresses inside the configured networks (or all, when open)."""

    def __init__(self, networks: Iterable[str] | None) -> None:
        self.open = networks is None
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in (networks or ())
        )
        self._cache: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        if self.open:
            return True
        known = self._cache.get(host)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        allowed = any(address in network for network in self.networks)
        if len(self._cache) < 4096:
            self._cache[host] = allowed
        return allowed

    def __str__(self) -> str:
        return "open" if self.open else ", ".join(str(n) for n in self.networks)
