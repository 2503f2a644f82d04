"""The B2BUA benchmark's servers: the VMS engine in b2bua mode, Kamailio as a stateful proxy.

Both take the same calls from the caller's SIPp and send them on to the
same callee SIPp (the trunk), listen on loopback UDP only, and are pinned
to one core with taskset.

The engine runs ``sip.mode: b2bua`` on a generated configuration, as in
production except for the flood limits: the tree is the redirect
benchmark's customer tree (a DRS rule, a nuisance and a VIP caller list, a
holiday calendar, an office-hours time window, forwards with ``on_busy``
and ``on_no_answer`` failover, an after-hours fallback), so every call
walks the list and time checks before its rule matches; ``state: memory``;
``data_dir`` in the work directory, so every leg's call detail record is
written to SQLite (group commit every 50 ms) as in production; ``log:
warning``; the ``calls:`` settings at their defaults (ring time 180 s,
Min-SE 90 s). Its flood limits are raised to 100,000 calls/s: the
production defaults (20 calls/s per called number, 500 per source) would
refuse a benchmark's calls, all from one address to one number, with 503s;
the guard still runs on every call.

Kamailio is a stateful record-routing proxy and nothing more: ``tm``
transactions (``t_relay``, retransmissions absorbed with
``t_precheck_trans``/``t_check_trans``), ``record_route`` on the INVITE,
``loose_route`` then ``t_relay`` for requests inside the dialog (the ACK and
the BYE), ``maxfwd``, and a ``failure_route`` that sends a call answered
486 or 408 on to a second destination at the same trunk (like the tree's
``on_busy``; the callee never refuses, so it only has to be armed). What
matters for a fair figure:

- ``-x tlsf``: Debian's build defaults to ``qm``, a debugging allocator
  whose malloc walks its free lists (70% of Kamailio's CPU under load in the
  redirect benchmark, 2.4 to 4 times the CPU per call of ``tlsf``; see
  servers.py). ``tm`` allocates each transaction in shared memory, so it
  matters here as much; ``--kamailio-mem qm`` shows it.
- One UDP worker (``--kamailio-children``, default 1): the engine is one
  process, and both are pinned to one core, where more workers only add
  context switches. Kamailio also forks its timer processes (``tm``'s
  retransmission and wait timers), which count in its CPU.
- 256 MB of shared memory (``-m``): transactions wait 5 s (``wt_timer``)
  after their final response, so about 7 s of calls' transactions are in
  memory at once, more than the 64 MB the redirect benchmark gives a
  stateless server.
- ``-b 4194304``: a UDP receive buffer of up to 4 MiB, the engine's
  (``sip.overload.receive_buffer_kb``), so neither drops a burst the other
  would have queued.
- ``debug=-1`` (errors only): the engine runs at ``log: warning`` and logs
  nothing per call.
"""

from __future__ import annotations

from pathlib import Path

from servers import DESK_BUSY, EngineServer, KamailioServer

__all__ = ["B2buaEngine", "KamailioProxy"]

KAMAILIO_PROXY = """\
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "corex.so"
loadmodule "pv.so"

# No final answer from the callee within 4 s: 408, and the failure_route runs.
modparam("tm", "fr_timer", 4000)
modparam("tm", "fr_inv_timer", 30000)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        # Inside a dialog (ACK of the 2xx, BYE): along the recorded route.
        if (loose_route()) {{
            route(RELAY);
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    # A retransmission of a request being handled: absorbed, or answered again.
    if (t_precheck_trans()) {{
        t_check_trans();
        exit;
    }}
    t_check_trans();
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    record_route();
    rewritehostport("{trunk_host}:{trunk_port}");
    t_on_failure("FAILOVER");
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

failure_route[FAILOVER] {{
    if (t_is_canceled()) {{
        exit;
    }}
    # Busy or no answer: the next destination at the same trunk, like the tree's on_busy.
    if (t_check_status("486|408")) {{
        $rU = "{failover}";
        t_on_failure("LAST");
        t_relay();
        exit;
    }}
}}

failure_route[LAST] {{
    exit;
}}
"""


class B2buaEngine(EngineServer):
    """``vms serve`` in b2bua mode, its trunk the callee SIPp, pinned to one core."""

    mode = "b2bua"

    def __init__(self, root: Path, workdir: Path, cpu: int, trunk: tuple[str, int]) -> None:
        super().__init__(root, workdir, cpu)
        self.trunk = trunk

    @property
    def records(self) -> Path:
        """The call detail records' database (``data_dir``/cdr.sqlite)."""
        return self.dir / "var" / "cdr.sqlite"


class KamailioProxy(KamailioServer):
    """Debian's Kamailio as a stateful record-routing proxy to the callee SIPp, on one core."""

    role = "a stateful record-routing proxy"

    def __init__(
        self,
        workdir: Path,
        cpu: int,
        trunk: tuple[str, int],
        children: int = 1,
        memory: str = "qm",
        name: str = "kamailio",
    ) -> None:
        super().__init__(workdir, cpu, children, memory, name)
        self.trunk = trunk
        self.shared_mb = 256

    def routing(self) -> str:
        """Stateful relaying to the trunk, record-routed, with a failover on 486 or 408."""
        return KAMAILIO_PROXY.format(
            trunk_host=self.trunk[0], trunk_port=self.trunk[1], failover=DESK_BUSY
        )

    def extra_args(self) -> list[str]:
        return ["-b", str(4 * 1024 * 1024)]
