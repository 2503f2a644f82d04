"""Erlang C: the operators a queue needs for a service level, next to what it got.

Traffic is in erlangs (calls per second × average handling time). The
textbook formula divides ``A**N / N!`` by a sum of such terms, which
overflows a float beyond about 170 operators; here everything comes from the
Erlang B recursion ``B(n) = A·B(n-1) / (n + A·B(n-1))``, ``B(0) = 1``, whose
terms stay between 0 and 1 for any number of operators, and
``C = N·B / (N - A·(1 - B))``. :func:`agents_needed` runs the recursion once
into a numpy array and evaluates the service level for every staffing at once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["agents_needed", "erlang_b", "erlang_c", "service_level"]


def _blocking(traffic: float, agents: int) -> npt.NDArray[np.float64]:
    """Erlang B for 0..``agents`` operators."""
    if traffic < 0 or not math.isfinite(traffic):
        raise ValueError(f"traffic must be a finite number of erlangs >= 0, not {traffic!r}")
    if agents < 0:
        raise ValueError(f"agents must be >= 0, not {agents!r}")
    out = np.empty(agents + 1)
    b = 1.0
    out[0] = b
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
        out[n] = b
    return out


def _waiting(
    traffic: float, agents: npt.NDArray[np.int64], blocking: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Erlang C from Erlang B; 1 where the operators cannot keep up (``agents <= traffic``)."""
    stable = agents > traffic
    denominator = np.where(stable, agents - traffic * (1 - blocking), 1.0)
    return np.where(stable, agents * blocking / denominator, 1.0)


def _service_level(
    traffic: float,
    agents: npt.NDArray[np.int64],
    blocking: npt.NDArray[np.float64],
    aht_s: float,
    target_s: float,
) -> npt.NDArray[np.float64]:
    waiting = _waiting(traffic, agents, blocking)
    spare = np.maximum(agents - traffic, 0.0)  # np.where computes both branches
    return np.where(agents > traffic, 1 - waiting * np.exp(-spare * target_s / aht_s), 0.0)


def erlang_b(traffic: float, agents: int) -> float:
    """The probability that a call finds every operator busy, with no queue (lost calls)."""
    return float(_blocking(traffic, agents)[-1])


def erlang_c(traffic: float, agents: int) -> float:
    """The probability that a call waits in the queue; 1 when ``agents <= traffic``."""
    if traffic == 0:
        return 0.0
    blocking = _blocking(traffic, agents)[-1:]
    return float(_waiting(traffic, np.array([agents]), blocking)[0])


def service_level(traffic: float, agents: int, aht_s: float, target_s: float) -> float:
    """The share of calls answered within ``target_s`` seconds (0 to 1)."""
    if aht_s <= 0 or target_s < 0:
        raise ValueError(f"aht_s must be > 0 and target_s >= 0, not {aht_s!r}, {target_s!r}")
    if traffic == 0:
        return 1.0
    blocking = _blocking(traffic, agents)[-1:]
    return float(_service_level(traffic, np.array([agents]), blocking, aht_s, target_s)[0])


def agents_needed(calls_per_hour: float, aht_s: float, target_sl: float, target_s: float) -> int:
    """The fewest operators that answer ``target_sl`` (0 < x < 1) of calls within ``target_s``."""
    if not 0 < target_sl < 1:
        raise ValueError(f"target_sl is a share between 0 and 1 (exclusive), not {target_sl!r}")
    if calls_per_hour < 0 or aht_s <= 0 or target_s < 0:
        raise ValueError("calls_per_hour must be >= 0, aht_s > 0 and target_s >= 0")
    traffic = calls_per_hour * aht_s / 3600
    if traffic == 0:
        return 0
    # Square-root staffing puts the answer near A + β·√A with β a few units; double until met.
    limit = math.ceil(traffic + 5 * math.sqrt(traffic)) + 10
    while True:
        blocking = _blocking(traffic, limit)
        agents = np.arange(limit + 1)
        met = _service_level(traffic, agents, blocking, aht_s, target_s) >= target_sl
        if met.any():
            return int(np.argmax(met))
        limit *= 2
