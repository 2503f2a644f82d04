"""Media plane benchmark: how many paced prompt streams and bridged calls one engine core carries.

Run alone: ``.venv/bin/python bench/rtp_media.py [--quick]``; ``bench/run.py`` calls ``run``.

Three parts, each step in fresh processes, the engine side (a ``MediaPlane``
on the default Twisted reactor) pinned to core 0 and the peer to core 1:

- schedule: a few streams play the campaign prompt (looped) for 60 s; the
  receiver says how far each packet arrived from its schedule ``t_first +
  n × 20 ms`` (n from the RTP sequence): the issue wants every packet within
  ±2 ms.
- prompts: N streams play the looped prompt for ~10 s each step (N = 100,
  200, ...) to one receiver socket that timestamps arrivals in the kernel
  (SO_TIMESTAMPNS), per SSRC: deviation from the schedule (p99, max) and
  packets lost by sequence gap. Clean: p99 ≤ 5 ms and no loss (target: N ≥ 300).
- bridge: M bridged pairs (half of them PCMU↔PCMA, transcoded); a generator
  sends one 20 ms packet into both sides of every pair and timestamps the
  relayed packets: loss, relay latency (p99, max), its jitter (latency above
  the stream's own minimum, p99) and the engine's CPU per stream. Clean: no
  loss and latency p99 ≤ 5 ms (target: M ≥ 150, 300 streams each way).

A relayed packet is matched to the packet it relays by its RTP timestamp:
the engine maps a source's timestamps by a fixed offset from the first
packet it relays, so the first relayed packet of each stream is taken as
the relay of packet 0. Deviations are measured with the kernel's receive
timestamps, so the peer's own Python speed does not enter them. The
figures hold for a quiet machine: the share of a core other processes used
during each step is printed beside it. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import BenchError, Column, Sample, column, free_port, rows_table, summary_head

__all__ = ["Options", "headlines", "render", "run"]

PROMPT = Path("/work/shared/data/prompts/campaign-en.wav")
ENGINE_CPU = 0
PEER_CPU = 1
HOST = "127.0.0.1"
ENGINE_PORTS = (30000, 33999)
CLEAN_P99_MS = 5.0
SCHEDULE_MS = 2.0
PROMPT_TARGET = 300
BRIDGE_TARGET = 150
_TIMESTAMPNS = struct.Struct("qq")
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS), which Python 3.11's socket module lacks."""
_RTP = struct.Struct("!BBHII")


@dataclass(frozen=True)
class Options:
    streams: tuple[int, ...] = (100, 200, 300, 400, 500, 600, 700, 800)
    pairs: tuple[int, ...] = (50, 100, 150, 200, 250, 300, 350, 400)
    seconds: float = 10.0
    schedule_streams: int = 20
    schedule_seconds: float = 60.0
    quick: bool = False


# -- the processes -----------------------------------------------------------------------------


def _lines(reactor: Any, commands: dict[str, Callable[[], None]]) -> None:
    """Run ``commands`` by the lines the driver writes on our standard input."""
    from twisted.internet import stdio
    from twisted.protocols.basic import LineReceiver

    class Commands(LineReceiver):  # type: ignore[misc]
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:  # noqa: N802
            commands[line.decode().strip()]()

        def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
            if reactor.running:
                reactor.stop()

    stdio.StandardIO(Commands())


def _say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _plane(reactor: Any) -> Any:
    """The engine's plane, with the engine's GC tuning (engine/serve.py) and enough descriptors."""
    import gc

    from media.plane import MediaPlane

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return MediaPlane(reactor, HOST, HOST, ENGINE_PORTS, dead_media=3600.0)


def engine_prompts(streams: int, target: int) -> None:
    """The engine side of the prompt parts: N streams looping the prompt to one receiver."""
    from twisted.internet import reactor

    from media.prompts import load_prompt

    frames = load_prompt(PROMPT).frames("PCMU")
    plane = _plane(reactor)
    opened = [plane.open_stream() for _ in range(streams)]
    for stream in opened:
        stream.configure((HOST, target), "PCMU", 0, None, "sendonly")
    started: dict[str, float] = {}

    def loop(stream: Any) -> Callable[[], None]:
        def again() -> None:
            stream.play(frames, again)

        return again

    def go() -> None:
        started["cpu"], started["wall"] = _cpu(), time.monotonic()
        for stream in opened:
            stream.play(frames, loop(stream))

    def stop() -> None:
        _say(
            {
                "cpu_s": _cpu() - started["cpu"],
                "wall_s": time.monotonic() - started["wall"],
                "skipped_ticks": plane.pacer.skipped,
                "send_errors": sum(s.send_errors for s in opened),
            }
        )
        plane.close()
        reactor.stop()

    _lines(reactor, {"go": go, "stop": stop})
    reactor.callWhenRunning(_say, {"ready": True})
    reactor.run()


def engine_bridge(pairs: int, target: int) -> None:
    """The engine side of the bridge part: M bridged pairs, every stream towards the generator."""
    from twisted.internet import reactor

    plane = _plane(reactor)
    opened = []
    for index in range(pairs):
        a, b = plane.open_stream(), plane.open_stream()
        a.configure((HOST, target), "PCMU", 0, 101)
        if index % 2:
            b.configure((HOST, target), "PCMA", 8, 101)
        else:
            b.configure((HOST, target), "PCMU", 0, 101)
        a.bridge(b)
        opened.append((a, b))
    started: dict[str, float] = {}

    def go() -> None:
        started["cpu"], started["wall"] = _cpu(), time.monotonic()

    def stop() -> None:
        streams = [s for pair in opened for s in pair]
        _say(
            {
                "cpu_s": _cpu() - started["cpu"],
                "wall_s": time.monotonic() - started["wall"],
                "relayed": sum(s.stats.packets_sent for s in streams),
                "foreign": sum(s.foreign for s in streams),
                "send_errors": sum(s.send_errors for s in streams),
            }
        )
        plane.close()
        reactor.stop()

    _lines(reactor, {"go": go, "stop": stop})
    ready = {
        "ports": [[a.port, b.port] for a, b in opened],
        "types": [[0, 8 if index % 2 else 0] for index in range(pairs)],
    }
    reactor.callWhenRunning(_say, ready)
    reactor.run()


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, 16 << 20)
            break
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.bind((HOST, port))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket, out: list[tuple[bytes, tuple[str, int], int]]) -> None:
    """Every datagram waiting, with its kernel arrival time in ns (CLOCK_REALTIME)."""
    while True:
        try:
            data, ancillary, _, addr = sock.recvmsg(64, 64)
        except BlockingIOError:
            return
        arrival = time.time_ns()
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                seconds, nanos = _TIMESTAMPNS.unpack(value[: _TIMESTAMPNS.size])
                arrival = seconds * 1_000_000_000 + nanos
        out.append((data[:12], addr, arrival))


def receiver(port: int) -> None:
    """The peer of the prompt parts: timestamps every packet, then the schedule statistics."""
    import numpy as np

    sock = _socket(port)
    got: list[tuple[bytes, tuple[str, int], int]] = []
    _say({"ready": True})
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(sys.stdin, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if sock.fileno() in events:
            _drain(sock, got)
        if sys.stdin.fileno() in events and sys.stdin.readline().strip() in ("stop", ""):
            _drain(sock, got)
            break
    by_ssrc: dict[int, list[tuple[int, int]]] = {}
    for header, _, arrival in got:
        _, _, sequence, _, ssrc = _RTP.unpack(header)
        by_ssrc.setdefault(ssrc, []).append((sequence, arrival))
    deviations = []
    lost = 0
    for packets in by_ssrc.values():
        seq = np.unwrap(np.array([s for s, _ in packets], dtype=np.float64), period=65536)
        n = (seq - seq[0]).astype(np.int64)
        arrival = np.array([a for _, a in packets], dtype=np.int64)
        deviations.append(np.abs(arrival - arrival[0] - n * 20_000_000) / 1e6)
        lost += int(n.max() + 1 - len(np.unique(n)))
    every = np.sort(np.concatenate(deviations)) if deviations else np.zeros(0)
    _say(
        {
            "streams": len(by_ssrc),
            "packets": len(got),
            "lost": lost,
            **_spread(every),
            "within_2ms": float(np.mean(every <= SCHEDULE_MS)) if len(every) else None,
        }
    )


def _spread(ordered: Any) -> dict[str, float | None]:
    """p50, p99 and max of a sorted array of milliseconds (None when it is empty)."""
    import numpy as np

    if not len(ordered):
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": float(np.percentile(ordered, 50)),
        "p99_ms": float(np.percentile(ordered, 99)),
        "max_ms": float(ordered[-1]),
    }


def generator(port: int) -> None:
    """The peer of the bridge part: 20 ms packets into both sides of every pair, relays timed."""
    import numpy as np

    sock = _socket(port)
    pairs = json.loads(sys.stdin.readline())["ports"]
    targets = [p for pair in pairs for p in pair]
    # The relay of what we send to a pair's side comes out of the other side's port.
    source_of = {b: i * 2 for i, (_, b) in enumerate(pairs)} | {
        a: i * 2 + 1 for i, (a, _) in enumerate(pairs)
    }
    payload_types = [pt for pair in json.loads(sys.stdin.readline())["types"] for pt in pair]
    sys.stdin.readline()  # "go"
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(sys.stdin, select.POLLIN)
    capacity = 50 * 600  # ten minutes of packets, far beyond a step
    sent_at = np.zeros((len(targets), capacity), dtype=np.int64)
    got: list[tuple[bytes, tuple[str, int], int]] = []
    payload = bytes(range(0x40, 0x40 + 160))
    # Calls do not all speak in phase: each stream's packets go at its own offset in the 20 ms.
    slot = 0.02 / len(targets)
    start = time.monotonic()
    sent = 0
    tick = 0
    running = True
    while running and tick < capacity:
        tick, index = divmod(sent, len(targets))
        left = start + tick * 0.02 + index * slot - time.monotonic()
        if left > 0.0005:
            events = dict(poller.poll(left * 1000))
            if sock.fileno() in events:
                _drain(sock, got)
            if sys.stdin.fileno() in events:
                sys.stdin.readline()  # "stop"
                running = False
            continue
        first = 0x80 if tick == 0 else 0
        packet = _RTP.pack(0x80, first | payload_types[index], tick & 0xFFFF, tick * 160, index)
        sent_at[index, tick] = time.time_ns()
        with contextlib.suppress(BlockingIOError):
            sock.sendto(packet + payload, (HOST, targets[index]))
        sent += 1
    tick = sent // len(targets)
    time.sleep(0.2)
    _drain(sock, got)
    bases: dict[int, int] = {}
    relayed: dict[int, dict[int, int]] = {source: {} for source in range(len(targets))}
    for header, addr, arrival in got:
        source = source_of.get(addr[1])
        if source is None:
            continue
        timestamp = _RTP.unpack(header)[3]
        base = bases.setdefault(addr[1], timestamp)
        k = ((timestamp - base) % (1 << 32)) // 160
        if k < tick:
            relayed[source][k] = arrival - int(sent_at[source, k])
    latency = {source: list(ks.values()) for source, ks in relayed.items() if ks}
    received = sum(len(v) for v in latency.values())
    # The last packets may still be on their way when we stopped: count losses up to 100 ms before.
    counted = max(tick - 5, 0)
    lost = sum(counted - sum(1 for k in ks if k < counted) for ks in relayed.values())
    every = np.sort(np.concatenate([np.zeros(0), *latency.values()]) / 1e6)
    jitter = np.sort(
        np.concatenate([np.zeros(0), *((np.array(v) - min(v)) for v in latency.values())]) / 1e6
    )
    _say(
        {
            "streams": len(targets),
            "sent": sent,
            "received": received,
            "lost": lost,
            **_spread(every),
            "jitter_p99_ms": float(np.percentile(jitter, 99)) if len(jitter) else None,
        }
    )


# -- the driver --------------------------------------------------------------------------------


def _spawn(role: list[str], cpu: int) -> subprocess.Popen[str]:
    argv = ["taskset", "-c", str(cpu), sys.executable, str(Path(__file__).resolve()), *role]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _read(process: subprocess.Popen[str], what: str, timeout: float = 60.0) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        error = process.stderr.read() if process.stderr else ""
        last = (error.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the {what} process failed: {last}")
    value: dict[str, Any] = json.loads(line)
    return value


def _tell(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _end(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _others(before: Sample, pids: Sequence[int]) -> float:
    """% of one core used by processes other than ours since ``before``."""
    after = Sample.take(None)
    ticks, _ = after.others_since(before, exclude={*pids, os.getpid()})
    clk = os.sysconf("SC_CLK_TCK")
    return ticks * 100 / clk / max(after.at - before.at, 1e-9)


def prompt_step(streams: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    peer = _spawn(["receiver", "--port", str(port)], PEER_CPU)
    engine: subprocess.Popen[str] | None = None
    try:
        _read(peer, "receiver")
        role = ["engine-prompts", "--streams", str(streams), "--target", str(port)]
        engine = _spawn(role, ENGINE_CPU)
        _read(engine, "engine")
        before = Sample.take(None)
        _tell(peer, "go")
        _tell(engine, "go")
        time.sleep(seconds)
        _tell(engine, "stop")
        cpu = _read(engine, "engine")
        time.sleep(0.2)
        _tell(peer, "stop")
        got = _read(peer, "receiver", timeout=120)
        others = _others(before, [peer.pid, engine.pid])
    finally:
        _end(peer, *([engine] if engine else []))
    clean = _clean(got) and got["streams"] == streams
    return {
        "streams": streams,
        **got,
        "engine_cpu_pct": 100 * cpu["cpu_s"] / cpu["wall_s"],
        "skipped_ticks": cpu["skipped_ticks"],
        "send_errors": cpu["send_errors"],
        "others_pct": others,
        "clean": clean,
    }


def bridge_step(pairs: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    engine = _spawn(["engine-bridge", "--pairs", str(pairs), "--target", str(port)], ENGINE_CPU)
    peer: subprocess.Popen[str] | None = None
    try:
        ready = _read(engine, "engine")
        peer = _spawn(["generator", "--port", str(port)], PEER_CPU)
        _tell(peer, json.dumps({"ports": ready["ports"]}))
        _tell(peer, json.dumps({"types": ready["types"]}))
        time.sleep(0.5)  # the generator binds its socket
        before = Sample.take(None)
        _tell(engine, "go")
        _tell(peer, "go")
        time.sleep(seconds)
        _tell(peer, "stop")
        time.sleep(0.1)
        _tell(engine, "stop")
        cpu = _read(engine, "engine")
        got = _read(peer, "generator", timeout=120)
        others = _others(before, [engine.pid, peer.pid])
    finally:
        _end(engine, *([peer] if peer else []))
    streams = 2 * pairs
    clean = _clean(got)
    return {
        "pairs": pairs,
        **got,
        "engine_cpu_pct": 100 * cpu["cpu_s"] / cpu["wall_s"],
        "engine_cpu_pct_per_stream": 100 * cpu["cpu_s"] / cpu["wall_s"] / streams,
        "engine_us_per_relayed_packet": 1e6 * cpu["cpu_s"] / max(cpu["relayed"], 1),
        "foreign": cpu["foreign"],
        "send_errors": cpu["send_errors"],
        "others_pct": others,
        "clean": clean,
    }


def _clean(got: dict[str, Any]) -> bool:
    """No packet lost and a p99 within the target: a step the next one may build on."""
    return got["lost"] == 0 and got["p99_ms"] is not None and got["p99_ms"] <= CLEAN_P99_MS


def _largest_clean(steps: list[dict[str, Any]], key: str) -> int | None:
    clean = [s[key] for s in steps if s.get("clean")]
    return max(clean) if clean else None


def run(
    opts: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Every part; the JSON-ready summary and one sentence per thing that could not run."""
    del root  # the prompt lives in the shared data, the roles in this file
    seconds = 3.0 if opts.quick else opts.seconds
    schedule_seconds = 15.0 if opts.quick else opts.schedule_seconds
    problems: list[str] = []
    summary = summary_head(
        "media", {**asdict(opts), "seconds": seconds, "schedule_seconds": schedule_seconds}
    )
    if not PROMPT.exists():
        return summary, [f"the prompt {PROMPT} is missing"]
    say(f"\nmedia: schedule ({opts.schedule_streams} streams, {schedule_seconds:g} s)")
    try:
        summary["schedule"] = prompt_step(opts.schedule_streams, schedule_seconds)
        say(_row_prompt(summary["schedule"]))
    except BenchError as exc:
        problems.append(str(exc))
    for part, steps, step, key, fmt in (
        ("prompts", opts.streams, prompt_step, "streams", _row_prompt),
        ("bridge", opts.pairs, bridge_step, "pairs", _row_bridge),
    ):
        results: list[dict[str, Any]] = []
        say(f"media: {part}, {seconds:g} s per step")
        for count in steps:
            try:
                result = step(count, seconds)
            except BenchError as exc:
                problems.append(f"{part} at {count}: {exc}")
                break
            results.append(result)
            say(fmt(result))
            if not result["clean"]:
                break
        summary[part] = {"steps": results, "largest_clean": _largest_clean(results, key)}
    say("")
    say(render(summary))
    return summary, problems


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _row_prompt(s: dict[str, Any]) -> str:
    return (
        f"  {s['streams']} streams: p99 {_ms(s['p99_ms'])} ms, max {_ms(s['max_ms'])} ms, "
        f"within ±2 ms {100 * (s['within_2ms'] or 0):.3f} %, lost {s['lost']}, "
        f"engine {s['engine_cpu_pct']:.0f} % of a core, others {s['others_pct']:.0f} %"
    )


def _row_bridge(s: dict[str, Any]) -> str:
    return (
        f"  {s['pairs']} pairs: latency p99 {_ms(s['p99_ms'])} ms, max {_ms(s['max_ms'])} ms, "
        f"jitter p99 {_ms(s['jitter_p99_ms'])} ms, lost {s['lost']}/{s['sent']}, "
        f"engine {s['engine_cpu_pct']:.0f} % ({s['engine_us_per_relayed_packet']:.1f} µs/packet), "
        f"others {s['others_pct']:.0f} %"
    )


def _pct(value: float) -> str:
    return f"{value:.0f}"


_ENGINE = column("engine %", "engine_cpu_pct", _pct)


def _columns(count: str, *middle: Column) -> list[Column]:
    """A part's step table: the count, its latencies, the part's own columns, everyone else."""
    latencies = [column(f"{q} ms", f"{q}_ms", _ms) for q in ("p50", "p99", "max")]
    return [column(count, count), *latencies, *middle, column("other %", "others_pct", _pct)]


_PROMPT_COLUMNS = _columns(
    "streams",
    ("% ≤2 ms", lambda s: f"{100 * (s['within_2ms'] or 0):.3f}"),
    column("lost", "lost"),
    _ENGINE,
)
_BRIDGE_COLUMNS = _columns(
    "pairs",
    column("jitter p99", "jitter_p99_ms", _ms),
    ("lost/sent", lambda s: f"{s['lost']}/{s['sent']}"),
    _ENGINE,
    column("% per stream", "engine_cpu_pct_per_stream", lambda v: f"{v:.3f}"),
    column("µs/packet", "engine_us_per_relayed_packet", lambda v: f"{v:.1f}"),
)


def render(summary: dict[str, Any]) -> str:
    """The steps of each part as tables, then the headlines."""
    out = []
    prompts = [summary["schedule"]] if summary.get("schedule") else []
    prompts += (summary.get("prompts") or {}).get("steps", [])
    if prompts:
        out.append("Paced prompt streams (deviation from t_first + n × 20 ms at the receiver)")
        out.append(rows_table(_PROMPT_COLUMNS, prompts))
    bridge = (summary.get("bridge") or {}).get("steps", [])
    if bridge:
        out.append("\nBridged calls (relay latency generator → engine → generator)")
        out.append(rows_table(_BRIDGE_COLUMNS, bridge))
    out += ["", *headlines(summary)]
    return "\n".join(out)


def headlines(summary: dict[str, Any]) -> list[str]:
    """The closing-summary lines: the schedule accuracy and the largest clean steps."""
    lines = []
    schedule = summary.get("schedule")
    if schedule:
        lines.append(
            f"schedule: {schedule['streams']} streams over "
            f"{summary['options']['schedule_seconds']:g} s, max deviation "
            f"{_ms(schedule['max_ms'])} ms, {100 * (schedule['within_2ms'] or 0):.3f} % "
            f"within ±{SCHEDULE_MS:g} ms"
        )
    for part, unit, target in (
        ("prompts", "streams", PROMPT_TARGET),
        ("bridge", "bridged calls", BRIDGE_TARGET),
    ):
        result = summary.get(part)
        if not result:
            continue
        best = result["largest_clean"]
        status = "n/a" if best is None else "PASS" if best >= target else "MISS"
        lines.append(
            f"{part}: largest clean {best if best is not None else 'none'} {unit} "
            f"(p99 ≤ {CLEAN_P99_MS:g} ms, no loss; target ≥ {target}): {status}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "role",
        nargs="?",
        default="bench",
        choices=["bench", "engine-prompts", "engine-bridge", "receiver", "generator"],
    )
    parser.add_argument("--quick", action="store_true", help="3 s steps, 15 s schedule")
    parser.add_argument("--streams", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=0)
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.role == "engine-prompts":
        engine_prompts(args.streams, args.target)
    elif args.role == "engine-bridge":
        engine_bridge(args.pairs, args.target)
    elif args.role == "receiver":
        receiver(args.port)
    elif args.role == "generator":
        generator(args.port)
    else:
        _, problems = run(Options(quick=args.quick), Path(__file__).resolve().parent.parent)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
