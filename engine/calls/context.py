"""What every call needs from the engine, gathered once: the stack, transports, clock, settings.

The call controller and its legs are sans-IO in the same sense as the
transaction layer: they send through ``SipStack`` and the transports it is
given, they read time from the stack's clock and schedule on its timing
wheel, and the shared state, call records and site health arrive as
objects with small interfaces, so tests can hand in fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.sip.stack import SipStack
from engine.sip.transaction import Transport

if TYPE_CHECKING:
    from engine.calls.drs import DrsService
    from engine.calls.media import MediaServices
    from engine.calls.queue import AcmServices

__all__ = ["CallContext", "CallSettings", "Records", "Sites", "SlotState"]

Address = tuple[str, int]


@dataclass(frozen=True)
class CallSettings:
    """B2BUA behaviour that the configuration can change."""

    #: Longest time a caller hears ringing across a whole failover chain.
    max_ring_time: float = 180.0
    #: Shortest session interval accepted from a peer (RFC 4028 Min-SE).
    min_se: int = 90
    #: Lease of a max_calls slot in the shared state; renewed while the call lasts.
    lease_ttl: float = 120.0
    #: User part of our Contact.
    contact_user: str = "vms"


class SlotState(Protocol):
    """The part of ``engine.state`` the controller uses (per-destination counters)."""

    def acquire(self, key: str, limit: int, lease: str) -> Any: ...

    def release(self, key: str, lease: str) -> Any: ...


class Records(Protocol):
    """The call detail record store (``engine.cdr``)."""

    def leg_started(self, record: Any) -> None: ...

    def leg_updated(self, record: Any) -> None: ...

    def leg_ended(self, record: Any) -> None: ...


class Sites(Protocol):
    """Site health (``engine.sites``): the down site a destination is behind."""

    def down_site_for(self, number: str) -> str | None: ...


@dataclass
class CallContext:
    """The engine's services as the calls see them."""

    stack: SipStack
    transport: Transport  # towards the trunk (UDP or the TCP pool)
    local: Address  # our address on that transport, for Via and Contact
    trunk: Address
    trunk_name: str  # host[:port] as configured, for Request-URIs
    settings: CallSettings = field(default_factory=CallSettings)
    state: SlotState | None = None
    records: Records | None = None
    sites: Sites | None = None
    billing_prefixes: tuple[str, ...] = ()
    media: MediaServices | None = None  # None: no media plane (trees with media are refused)
    drs: DrsService | None = None  # the DRS phone service, when drs.service_number is set
    acm: AcmServices | None = None  # ACM queues, when a customer has acm (b2bua mode)

    @property
    def contact(self) -> str:
        host, port = self.local
        shown = f"[{host}]" if ":" in host else host
        return f"<sip:{self.settings.contact_user}@{shown}:{port}>"

    def now(self) -> float:
        return self.stack.clock.seconds()
