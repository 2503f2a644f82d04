"""What a customer's Agent Contact Management is made of: groups, operators, supervisors.

Plain frozen values, read from ``customers.ID.acm`` (engine/acm/config.py);
the strategies and the operator state machine read them, nothing here does IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.acm.mailconfig import EmailSettings

__all__ = [
    "DEFAULT_STRATEGY",
    "MAX_LEVEL",
    "MIN_LEVEL",
    "STRATEGIES",
    "AcmSettings",
    "Group",
    "Operator",
    "Softphone",
    "Tier",
]

#: How a group picks among its available operators (engine/acm/strategies.py).
STRATEGIES = ("level-then-longest-idle", "round-robin", "fewest-calls", "ring-all")
DEFAULT_STRATEGY = STRATEGIES[0]
#: The competence index of an operator in a group: 9 is the most competent.
MIN_LEVEL, MAX_LEVEL = 1, 9


@dataclass(frozen=True)
class Tier:
    """From ``after`` seconds of waiting on, operators of ``min_level`` and up may be offered."""

    after: float
    min_level: int


@dataclass(frozen=True)
class Group:
    """A competence group, and how its queue offers calls."""

    name: str
    strategy: str = DEFAULT_STRATEGY
    #: Seconds an offer rings before it counts as not answered.
    ring_timeout: float = 15.0
    #: Seconds after a call before the operator is offered the next one.
    wrap_up: float = 10.0
    #: Seconds a caller waits at most in the queue.
    max_wait: float = 300.0
    #: Consecutive unanswered offers that put an operator on break (0: never).
    auto_break_after: int = 3
    #: Sorted by ``after``, the first at 0, ``min_level`` falling: empty, every level at once.
    tiers: tuple[Tier, ...] = ()
    #: Seconds within which an answer counts towards the service level (statistics).
    service_level: float = 20.0
    #: Seconds between the announcements of position and expected wait while a caller waits.
    announce_every: float = 30.0

    def min_level(self, waited: float) -> int:
        """The lowest level a caller who has waited ``waited`` seconds may be offered to."""
        level = MIN_LEVEL
        for tier in self.tiers:
            if tier.after > waited:
                break
            level = tier.min_level
        return level


@dataclass(frozen=True)
class Operator:
    """Someone who answers a group's calls, on any of ``numbers`` (E.164)."""

    name: str
    numbers: tuple[str, ...]
    #: Digits keyed with the operator's name to log in, out or on break by phone, or their
    #: scrypt hash (engine/passwords.py); check it with AcmDirectory.verify_pin.
    pin: str = field(repr=False)
    #: Group name -> competence level (MIN_LEVEL..MAX_LEVEL).
    groups: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: A SIP softphone that registers with the engine, reached where it registered from.
    softphone: Softphone | None = None
    #: The operator number keyed, with the PIN, at the customer's ACM feature number.
    id: str | None = None


@dataclass(frozen=True)
class Softphone:
    """The digest account of an operator's softphone (engine/calls/registrar.py).

    The realm is the customer's id; ``ha1`` holds HA1 = H(user:realm:password)
    per digest algorithm ("MD5", "SHA-256"), as ``vms passwd --digest`` prints
    it: password-equivalent for that realm, so as secret as a password.
    """

    user: str
    ha1: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class AcmSettings:
    """``customers.ID.acm``."""

    groups: Mapping[str, Group]
    operators: Mapping[str, Operator]
    #: Who watches and steers every group (the supervisors' screen); they need not be operators.
    supervisors: tuple[str, ...] = ()
    #: Where e-mails come from and which group each goes to (engine/acm/mailconfig.py).
    email: EmailSettings | None = None
    #: The number operators call to log in, out or take a break (engine/calls/operator_phone.py).
    feature_number: str | None = None
