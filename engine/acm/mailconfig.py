"""``customers.ID.acm.email``: where a customer's e-mails come from and which group gets each.

E-mails arrive through an SMTP intake (``smtp``: the engine listens, accepts
the customer's ``domains`` only) and/or are fetched from a mailbox (``imap``).
Each becomes a contact of one group: the first of ``rules`` that matches, else
``default_group``, so no e-mail is ever without a group. Rules match on the
envelope recipients (``to``, exact addresses), the sender (``from``) and the
subject (``subject``), the last two as case-insensitive regular expressions
compiled at load, so a bad pattern is a ``FILE:LINE:COL`` problem, not a
surprise at the first e-mail. IMAP passwords are never in the YAML: the
configuration names a file that holds one (read at each poll, so it rotates).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from routing_trees.source import Checker, Node, did_you_mean

__all__ = ["EmailSettings", "ImapSource", "Rule", "SmtpIntake", "read_email"]

_KEYS = ("smtp", "imap", "rules", "default_group", "max_size", "hold", "service_level")
_SMTP_KEYS = ("listen", "port", "domains")
_IMAP_KEYS = ("host", "port", "tls", "user", "password_file", "mailbox", "poll")
_RULE_KEYS = ("to", "from", "subject", "group")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
MIB = 1024 * 1024


@dataclass(frozen=True)
class SmtpIntake:
    """The engine's own SMTP server for this customer: mail to ``domains`` is accepted."""

    listen: str
    port: int
    domains: tuple[str, ...]


@dataclass(frozen=True)
class ImapSource:
    """A mailbox polled every ``poll`` seconds for UNSEEN messages."""

    host: str
    port: int
    tls: bool
    user: str
    password_file: Path = field(repr=False)
    mailbox: str = "INBOX"
    poll: float = 60.0


@dataclass(frozen=True)
class Rule:
    """Every condition given must hold; ``to`` holds when any recipient is one of its addresses."""

    group: str
    to: frozenset[str] = frozenset()
    sender: re.Pattern[str] | None = None
    subject: re.Pattern[str] | None = None

    def matches(self, recipients: Iterable[str], sender: str, subject: str) -> bool:
        if self.to and not self.to.intersection(r.lower() for r in recipients):
            return False
        if self.sender is not None and not self.sender.search(sender):
            return False
        return self.subject is None or bool(self.subject.search(subject))


@dataclass(frozen=True)
class EmailSettings:
    """``customers.ID.acm.email``."""

    default_group: str
    smtp: SmtpIntake | None = None
    imap: ImapSource | None = None
    #: First match wins.
    rules: tuple[Rule, ...] = ()
    #: Bytes; a larger message is refused (SMTP 552) or, in IMAP, not downloaded: marked
    #: seen and logged once (engine/acm/mailimap.py).
    max_size: int = 10 * MIB
    #: Seconds an operator handling an e-mail is kept from calls; each look at it renews them.
    hold: float = 600.0
    #: Seconds within which an e-mail counts as answered in time (statistics): e-mails are
    #: answered in hours, calls in seconds (the groups' ``service_level``).
    service_level: float = 4 * 3600.0

    def group_for(self, recipients: Iterable[str], sender: str, subject: str) -> str:
        """The group an e-mail goes to."""
        wanted = tuple(recipients)
        for rule in self.rules:
            if rule.matches(wanted, sender, subject):
                return rule.group
        return self.default_group


def read_email(
    check: Checker, node: Node, what: str, groups: Collection[str]
) -> EmailSettings | None:
    """The e-mail settings, or None once a problem is recorded; ``groups``: the ACM's groups."""
    before = len(check.problems)
    fields = check.mapping(node, what, allowed=_KEYS, required=("default_group",))
    if fields is None:
        return None
    default = None
    if "default_group" in fields:
        default = _group(check, fields["default_group"][1], f"{what}.default_group", groups)
    smtp = _smtp(check, fields["smtp"][1], f"{what}.smtp") if "smtp" in fields else None
    imap = _imap(check, fields["imap"][1], f"{what}.imap") if "imap" in fields else None
    if "smtp" not in fields and "imap" not in fields:
        check.problem(node, f"{what} needs smtp (an intake), imap (a mailbox) or both: "
                            "otherwise no e-mail ever arrives")  # fmt: skip
    rules: list[Rule] = []
    listed = check.sequence(fields["rules"][1], f"{what}.rules") if "rules" in fields else None
    for item in listed or []:
        rule = _rule(check, item, f"each rule of {what}.rules", groups)
        if rule is not None:
            rules.append(rule)
    max_size: int | None = EmailSettings.max_size
    if "max_size" in fields:
        max_size = check.integer(fields["max_size"][1], f"{what}.max_size", 1024, 100 * MIB)
    hold: float | None = EmailSettings.hold
    if "hold" in fields:
        hold = check.number(fields["hold"][1], f"{what}.hold", 30.0)
    service_level: float | None = EmailSettings.service_level
    if "service_level" in fields:
        service_level = check.number(fields["service_level"][1], f"{what}.service_level", 1.0)
    if len(check.problems) > before or None in (default, max_size, hold, service_level):
        return None
    assert default is not None and max_size is not None and hold is not None
    assert service_level is not None
    return EmailSettings(default, smtp, imap, tuple(rules), max_size, hold, service_level)


def _group(check: Checker, node: Node, what: str, groups: Collection[str]) -> str | None:
    name = check.string(node, what)
    if name is not None and name not in groups:
        hint = did_you_mean(name, groups) or f" (groups: {', '.join(groups) or 'none'})"
        check.problem(node, f"{what}: undefined group '{name}'{hint}")
        return None
    return name


def _smtp(check: Checker, node: Node, what: str) -> SmtpIntake | None:
    fields = check.mapping(node, what, allowed=_SMTP_KEYS, required=("port", "domains"))
    if fields is None or "port" not in fields or "domains" not in fields:
        return None
    listen = "127.0.0.1"
    if "listen" in fields:
        listen = check.string(fields["listen"][1], f"{what}.listen") or listen
    port = check.integer(fields["port"][1], f"{what}.port", 1, 65535)
    domains: list[str] = []
    for item, text in check.strings(fields["domains"][1], f"{what}.domains") or []:
        domain = text.lower()
        if not _DOMAIN.fullmatch(domain):
            check.problem(item, f"{what}.domains: '{text}' is not a domain name")
        elif domain in domains:
            check.problem(item, f"{what}.domains: '{text}' is listed twice")
        else:
            domains.append(domain)
    if port is None or not domains:
        return None
    return SmtpIntake(listen, port, tuple(domains))


def _imap(check: Checker, node: Node, what: str) -> ImapSource | None:
    fields = check.mapping(node, what, allowed=_IMAP_KEYS,
                           required=("host", "user", "password_file"))  # fmt: skip
    if fields is None or any(k not in fields for k in ("host", "user", "password_file")):
        return None
    before = len(check.problems)
    host = check.string(fields["host"][1], f"{what}.host")
    user = check.string(fields["user"][1], f"{what}.user")
    tls = True
    if "tls" in fields:
        tls = check.boolean(fields["tls"][1], f"{what}.tls") is not False
    port = 993 if tls else 143
    if "port" in fields:
        port = check.integer(fields["port"][1], f"{what}.port", 1, 65535) or port
    mailbox = "INBOX"
    if "mailbox" in fields:
        mailbox = check.string(fields["mailbox"][1], f"{what}.mailbox") or mailbox
    poll = ImapSource.poll
    if "poll" in fields:
        poll = check.number(fields["poll"][1], f"{what}.poll", 5.0) or poll
    file_node = fields["password_file"][1]
    name = check.string(file_node, f"{what}.password_file")
    password_file = None
    if name is not None:
        password_file = Path(check.file).parent / name  # relative to the configuration
        if not password_file.is_file():
            check.problem(file_node, f"{what}.password_file: no such file: {password_file}")
    if len(check.problems) > before or None in (host, user, password_file):
        return None
    assert host is not None and user is not None and password_file is not None
    return ImapSource(host, port, tls, user, password_file, mailbox, poll)


def _rule(check: Checker, node: Node, what: str, groups: Collection[str]) -> Rule | None:
    fields = check.mapping(node, what, allowed=_RULE_KEYS, required=("group",))
    if fields is None or "group" not in fields:
        return None
    before = len(check.problems)
    group = _group(check, fields["group"][1], f"{what}: group", groups)
    if not set(fields) - {"group"}:
        check.problem(node, f"{what} needs a condition: to, from or subject")
    to: set[str] = set()
    if "to" in fields:
        for item, text in check.strings(fields["to"][1], f"{what}: to") or []:
            if _ADDRESS.fullmatch(text):
                to.add(text.lower())
            else:
                check.problem(item, f"{what}: to: '{text}' is not an e-mail address")
    sender = _pattern(check, fields["from"][1], f"{what}: from") if "from" in fields else None
    subject = _pattern(check, fields["subject"][1], f"{what}: subject") \
        if "subject" in fields else None  # fmt: skip
    if len(check.problems) > before or group is None:
        return None
    return Rule(group, frozenset(to), sender, subject)


def _pattern(check: Checker, node: Node, what: str) -> re.Pattern[str] | None:
    text = check.string(node, what)
    if text is None:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        check.problem_inside(node, exc.pos or 0, f"{what}: not a regular expression: {exc.msg}")
        return None
