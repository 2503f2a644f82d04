"""The ACM part of the SharedState contract: presence, reservations, queues, counters.

Every test runs against the memory backend and a real ``redis-server`` with
the fixtures of tests/test_state_contract.py (a ``task.Clock`` the tests
move, so leases expire without waiting; a fresh key prefix per Redis test).
"""

from __future__ import annotations

import pytest
import pytest_twisted
import test_state_contract as contract

from engine.state.interface import HELD, MAX_PRIORITY, QUEUE_LEASE, OperatorInfo, SharedState

Backend = contract.Backend
backend = contract.backend
redis_server = contract.redis_server

T0 = contract.T0
TTL = 15.0
C = "acme"
STATES = ["logged_out", "available", "ringing", "on_call", "wrap_up", "break"]


async def states(state: SharedState, group: str, customer: str = C) -> dict[str, str]:
    return {op.operator: op.state for op in await state.operators(customer, group)}


async def put(state: SharedState, name: str, state_name: str, groups: dict[str, int],
              since: float, customer: str = C) -> None:
    """``name`` in ``state_name`` from ``since``: set, or reserved by call ``hold`` and moved."""
    if state_name not in HELD:
        await state.set_operator(customer, name, state_name, groups, since)
        return
    await state.set_operator(customer, name, "available", groups, since)
    assert await state.reserve(customer, [name], "hold", TTL) == name
    if state_name != "reserved":
        assert await state.move_operator(customer, name, "hold", state_name, TTL)


async def team(state: SharedState, *names: str, group: str = "sales") -> None:
    """``names`` available in ``group`` at level 1, idle since T0 - 100, T0 - 99 ..."""
    for n, name in enumerate(names):
        await state.set_operator(C, name, "available", {group: 1}, T0 - 100 + n)


# -- presence --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_operators_of_a_group_with_their_level_in_it(backend: Backend) -> None:
    state = backend.state
    await state.set_operator(C, "bert", "break", {"sales": 1, "support": 2}, T0 - 5.25)
    await state.set_operator(C, "anna", "available", {"sales": 3}, T0 - 60.5)
    assert await state.operators(C, "sales") == [
        OperatorInfo("anna", "available", 3, T0 - 60.5, 0),
        OperatorInfo("bert", "break", 1, T0 - 5.25, 0),
    ]
    assert await state.operators(C, "support") == [OperatorInfo("bert", "break", 2, T0 - 5.25, 0)]
    assert await state.operators(C, "nobody") == []
    assert await state.operators("other", "sales") == []


@pytest_twisted.ensureDeferred
async def test_only_a_call_puts_an_operator_in_its_states(backend: Backend) -> None:
    state = backend.state
    for n, name in enumerate(STATES):
        await put(state, f"op{n}", name, {"g": 1}, T0)
    assert await states(state, "g") == {f"op{n}": name for n, name in enumerate(STATES)}
    for wrong in ["reserved", "ringing", "on_call", "wrap_up", "idle", ""]:
        with pytest.raises(ValueError, match="cannot be set"):
            await state.set_operator(C, "x", wrong, {"g": 1}, T0)
    for wrong in ["reserved", "idle", ""]:
        await team(state, "y", group="h")
        with pytest.raises(ValueError, match="cannot be moved"):
            await state.move_operator(C, "y", "call", wrong)
    assert "x" not in await states(state, "g")


@pytest_twisted.ensureDeferred
async def test_setting_groups_again_leaves_the_old_ones(backend: Backend) -> None:
    state = backend.state
    await state.set_operator(C, "anna", "available", {"sales": 3, "support": 1}, T0)
    await state.set_operator(C, "anna", "break", {"support": 2, "vip": 5}, T0 + 1)
    assert await state.operators(C, "sales") == []
    assert await state.operators(C, "support") == [OperatorInfo("anna", "break", 2, T0 + 1, 0)]
    assert await state.operators(C, "vip") == [OperatorInfo("anna", "break", 5, T0 + 1, 0)]
    await state.set_operator(C, "anna", "logged_out", {}, T0 + 2)
    assert await state.operators(C, "support") == []
    assert await state.operators(C, "vip") == []


@pytest_twisted.ensureDeferred
async def test_customers_are_apart_whatever_their_names(backend: Backend) -> None:
    state = backend.state
    # Names that a plain "customer:kind:name" key layout would confuse.
    await state.set_operator("a", "op:b", "available", {"g": 1}, T0)
    await state.set_operator("a:op", "b", "break", {"g": 2}, T0)
    await put(state, "x", "on_call", {"g": 3}, T0, customer="a:group")
    assert await states(state, "g", "a") == {"op:b": "available"}
    assert await states(state, "g", "a:op") == {"b": "break"}
    assert await states(state, "g", "a:group") == {"x": "on_call"}
    assert await state.reserve("a:op", ["b", "op:b"], "c1", TTL) is None


@pytest_twisted.ensureDeferred
async def test_calls_handled_counts_each_time_an_operator_goes_on_a_call(
    backend: Backend,
) -> None:
    state = backend.state
    await put(state, "anna", "on_call", {"g": 1}, T0)
    assert await state.move_operator(C, "anna", "hold", "on_call", TTL)  # a renewal: one call
    assert await state.move_operator(C, "anna", "hold", "wrap_up", TTL)
    assert await state.move_operator(C, "anna", "hold", "available")
    assert await state.reserve(C, ["anna"], "c2", TTL) == "anna"
    assert await state.move_operator(C, "anna", "c2", "on_call", TTL)
    [anna] = await state.operators(C, "g")
    assert anna.calls_handled == 2
    assert anna.state == "on_call"


# -- reservations ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_reserve_takes_the_first_available_candidate_in_the_given_order(
    backend: Backend,
) -> None:
    state = backend.state
    for n, busy in enumerate(STATES):
        if busy != "available":
            await put(state, f"busy{n}", busy, {"g": 1}, T0)
    await team(state, "anna", "bert", "cleo", group="g")
    candidates = [f"busy{n}" for n in range(len(STATES))] + ["ghost", "bert", "anna", "cleo"]
    assert await state.reserve(C, candidates, "c1", TTL) == "bert"
    assert await state.reserve(C, candidates, "c2", TTL) == "anna"
    assert await state.reserve(C, candidates, "c3", TTL) == "cleo"
    assert await state.reserve(C, candidates, "c4", TTL) is None
    assert await state.reserve(C, [], "c5", TTL) is None
    ops = {op.operator: op for op in await state.operators(C, "g")}
    assert [ops[n].state for n in ("anna", "bert", "cleo")] == ["reserved"] * 3
    assert ops["bert"].idle_since == T0 - 99  # a reservation keeps the idle time


@pytest_twisted.ensureDeferred
async def test_reserves_sent_together_never_share_an_operator(backend: Backend) -> None:
    state = backend.state
    await team(state, *(f"op{n}" for n in range(5)))
    everyone = [f"op{n}" for n in range(5)]
    pending = [state.reserve(C, everyone, f"call{n}", TTL) for n in range(8)]
    got = [await d for d in pending]
    assert got == [*everyone, None, None, None]


@pytest_twisted.ensureDeferred
async def test_release_by_the_reserving_call_only(backend: Backend) -> None:
    state = backend.state
    await team(state, "anna")
    assert await state.reserve(C, ["anna"], "c1", TTL) == "anna"
    backend.clock.advance(2.5)
    assert not await state.move_operator(C, "anna", "c2", "available")
    assert not await state.move_operator(C, "nobody", "c1", "available")
    assert not await state.move_operator("other", "anna", "c1", "available")
    assert await states(state, "sales") == {"anna": "reserved"}
    assert await state.move_operator(C, "anna", "c1", "ringing", TTL)
    assert await state.operators(C, "sales") == [
        OperatorInfo("anna", "ringing", 1, T0 - 100, 0)]  # rung: still idle since before
    assert await state.reserve(C, ["anna"], "c3", TTL) is None  # ringing is not available
    assert await state.move_operator(C, "anna", "c1", "break")
    assert not await state.move_operator(C, "anna", "c1", "available")  # already let go


@pytest_twisted.ensureDeferred
async def test_release_back_to_available_makes_the_operator_reservable(backend: Backend) -> None:
    state = backend.state
    await team(state, "anna")
    assert await state.reserve(C, ["anna"], "c1", TTL) == "anna"
    backend.clock.advance(2.0)
    assert await state.move_operator(C, "anna", "c1", "available")
    (info,) = await state.operators(C, "sales")
    assert info.idle_since == T0 - 100  # given back unused: idle all along, its place kept
    assert await state.reserve(C, ["anna"], "c2", TTL) == "anna"


@pytest_twisted.ensureDeferred
async def test_set_operator_ends_a_reservation(backend: Backend) -> None:
    state = backend.state
    await team(state, "anna")
    assert await state.reserve(C, ["anna"], "c1", TTL) == "anna"
    await state.set_operator(C, "anna", "break", {"sales": 1}, T0 + 1)
    assert not await state.move_operator(C, "anna", "c1", "available")
    assert await states(state, "sales") == {"anna": "break"}
    await state.set_operator(C, "anna", "available", {"sales": 1}, T0 + 2)
    assert await state.reserve(C, ["anna"], "c2", TTL) == "anna"


@pytest_twisted.ensureDeferred
async def test_a_reservation_expires_after_its_ttl(backend: Backend) -> None:
    state = backend.state
    await team(state, "anna", "bert")
    assert await state.reserve(C, ["anna"], "c1", TTL) == "anna"
    assert await state.reserve(C, ["bert"], "c2", 2 * TTL) == "bert"
    backend.clock.advance(TTL - 0.002)
    assert await states(state, "sales") == {"anna": "reserved", "bert": "reserved"}
    assert await state.reserve(C, ["anna"], "c3", TTL) is None
    backend.clock.advance(0.002)
    assert await state.operators(C, "sales") == [
        OperatorInfo("anna", "available", 1, T0 - 100, 0),  # its idle time as before
        OperatorInfo("bert", "reserved", 1, T0 - 99, 0),
    ]
    assert not await state.move_operator(C, "anna", "c1", "available")  # too late
    assert await state.reserve(C, ["bert", "anna"], "c3", TTL) == "anna"
    assert not await state.move_operator(C, "anna", "c1", "available")  # c3's now
    assert await state.move_operator(C, "anna", "c3", "on_call", TTL)


@pytest_twisted.ensureDeferred
async def test_reserve_refuses_a_ttl_that_is_not_positive(backend: Backend) -> None:
    await team(backend.state, "anna")
    for ttl in (0.0, -1.0):
        with pytest.raises(ValueError, match="positive"):
            await backend.state.reserve(C, ["anna"], "c1", ttl)
    assert await states(backend.state, "sales") == {"anna": "available"}


# -- queues ----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_queue_order_is_priority_then_arrival(backend: Backend) -> None:
    state = backend.state
    arrivals = [("c1", 0, T0), ("c2", 0, T0 + 1), ("vip1", 5, T0 + 2), ("c3", 0, T0 + 0.5),
                ("vip2", 5, T0 + 1.5), ("top", MAX_PRIORITY, T0 + 9)]  # fmt: skip
    for call, priority, at in arrivals:
        await state.enqueue(C, "sales", call, priority, at)
    order = ["top", "vip2", "vip1", "c1", "c3", "c2"]
    assert [await state.position(C, "sales", call) for call in order] == [1, 2, 3, 4, 5, 6]
    assert await state.waiting(C, "sales") == 6
    assert await state.oldest(C, "sales") == T0  # c1, though four calls go before it


@pytest_twisted.ensureDeferred
async def test_same_priority_and_millisecond_go_by_call_id(backend: Backend) -> None:
    state = backend.state
    for call in ["b", "c", "a"]:
        await state.enqueue(C, "g", call, 1, T0 + 0.0001)
    assert [await state.position(C, "g", call) for call in "abc"] == [1, 2, 3]


@pytest_twisted.ensureDeferred
async def test_dequeue_moves_the_others_up(backend: Backend) -> None:
    state = backend.state
    for n in range(4):
        await state.enqueue(C, "sales", f"c{n}", 0, T0 + n)
    assert await state.dequeue(C, "sales", "c0")
    assert not await state.dequeue(C, "sales", "c0")
    assert not await state.dequeue(C, "sales", "never")
    assert await state.position(C, "sales", "c0") is None
    assert await state.position(C, "sales", "c3") == 3
    assert await state.oldest(C, "sales") == T0 + 1
    for n in range(1, 4):
        assert await state.dequeue(C, "sales", f"c{n}")
    assert await state.waiting(C, "sales") == 0
    assert await state.oldest(C, "sales") is None


@pytest_twisted.ensureDeferred
async def test_enqueue_again_changes_priority_and_time(backend: Backend) -> None:
    state = backend.state
    await state.enqueue(C, "g", "a", 0, T0)
    await state.enqueue(C, "g", "b", 0, T0 + 1)
    await state.enqueue(C, "g", "b", 3, T0 + 2)
    assert await state.position(C, "g", "b") == 1
    assert await state.waiting(C, "g") == 2
    await state.enqueue(C, "g", "a", 0, T0 + 5)
    assert await state.oldest(C, "g") == T0 + 2


@pytest_twisted.ensureDeferred
async def test_queues_of_groups_and_customers_are_apart(backend: Backend) -> None:
    state = backend.state
    await state.enqueue(C, "sales", "c1", 0, T0)
    await state.enqueue(C, "support", "c1", 0, T0 + 1)
    await state.enqueue("other", "sales", "c2", 0, T0 + 2)
    assert await state.waiting(C, "sales") == 1
    assert await state.position("other", "sales", "c1") is None
    assert await state.dequeue(C, "sales", "c1")
    assert await state.position(C, "support", "c1") == 1
    assert await state.oldest("other", "sales") == T0 + 2


@pytest_twisted.ensureDeferred
async def test_enqueue_refuses_what_the_score_cannot_hold(backend: Backend) -> None:
    state = backend.state
    for priority, at in [(-1, T0), (MAX_PRIORITY + 1, T0), (0, -1.0), (0, 2.0**42)]:
        with pytest.raises(ValueError, match="queue"):
            await state.enqueue(C, "g", "c", priority, at)
    assert await state.waiting(C, "g") == 0


# -- counters --------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_counters_add_up_per_customer(backend: Backend) -> None:
    state = backend.state
    assert await state.counters(C) == {}
    assert await state.incr(C, "offered") == 1
    assert await state.incr(C, "offered", 4) == 5
    assert await state.incr(C, "sales:answered") == 1
    assert await state.incr(C, "sales:answered", -1) == 0
    assert await state.incr("other", "offered") == 1
    assert await state.counters(C) == {"offered": 5, "sales:answered": 0}
    assert await state.counters("other") == {"offered": 1}


# -- holds: a call's states are leases, moved by compare-and-set -------------------


@pytest_twisted.ensureDeferred
async def test_a_hold_runs_out_unless_renewed(backend: Backend) -> None:
    state, clock = backend.state, backend.clock
    await put(state, "anna", "on_call", {"g": 1}, T0)
    clock.advance(TTL - 1)
    assert await state.move_operator(C, "anna", "hold", "on_call", TTL)  # renewed
    clock.advance(TTL - 1)
    assert await states(state, "g") == {"anna": "on_call"}
    clock.advance(1)  # the engine holding her died: the lease ran out
    assert await states(state, "g") == {"anna": "available"}
    assert not await state.move_operator(C, "anna", "hold", "wrap_up", TTL)
    assert await state.reserve(C, ["anna"], "next", TTL) == "anna"


@pytest_twisted.ensureDeferred
async def test_a_logout_during_a_call_wins_over_the_call(backend: Backend) -> None:
    state = backend.state
    await put(state, "anna", "on_call", {"g": 1}, T0)
    await state.set_operator(C, "anna", "logged_out", {"g": 1}, T0 + 5)
    assert not await state.move_operator(C, "anna", "hold", "wrap_up", TTL)  # the call ended
    assert await states(state, "g") == {"anna": "logged_out"}


@pytest_twisted.ensureDeferred
async def test_moves_of_a_call_set_since_as_the_operator_works(backend: Backend) -> None:
    state, clock = backend.state, backend.clock
    await team(state, "anna", group="g")  # idle since T0 - 100
    assert await state.reserve(C, ["anna"], "c1", TTL) == "anna"
    assert await state.move_operator(C, "anna", "c1", "ringing", TTL)
    clock.advance(3)
    assert await state.move_operator(C, "anna", "c1", "on_call", 120)
    clock.advance(60)
    assert await state.move_operator(C, "anna", "c1", "wrap_up", TTL)
    assert await state.operators(C, "g") == [OperatorInfo("anna", "wrap_up", 1, T0 + 63, 1)]
    clock.advance(10)
    assert await state.move_operator(C, "anna", "c1", "available")
    assert await state.operators(C, "g") == [OperatorInfo("anna", "available", 1, T0 + 73, 1)]


@pytest_twisted.ensureDeferred
async def test_a_login_starts_counting_calls_handled_again(backend: Backend) -> None:
    state = backend.state
    await put(state, "anna", "on_call", {"g": 1}, T0)
    await state.set_operator(C, "anna", "break", {"g": 1}, T0 + 1)
    assert (await state.operators(C, "g"))[0].calls_handled == 1  # a break keeps the shift
    await state.set_operator(C, "anna", "logged_out", {"g": 1}, T0 + 2)
    await state.set_operator(C, "anna", "available", {"g": 1}, T0 + 3)
    assert (await state.operators(C, "g"))[0].calls_handled == 0


@pytest_twisted.ensureDeferred
async def test_a_queued_call_leaves_by_itself_unless_its_engine_renews_it(
    backend: Backend,
) -> None:
    state, clock = backend.state, backend.clock
    await state.enqueue(C, "sales", "dead-engine", 0, T0)
    await state.enqueue(C, "sales", "alive", 0, T0 + 1)
    clock.advance(QUEUE_LEASE - 1)
    await state.renew_queued(C, "sales", ["alive", "never-queued"])
    assert await state.position(C, "sales", "alive") == 2
    clock.advance(1)  # the first lease ran out: its engine died
    assert await state.position(C, "sales", "alive") == 1
    assert await state.position(C, "sales", "dead-engine") is None
    assert await state.waiting(C, "sales") == 1
    assert await state.oldest(C, "sales") == T0 + 1
    assert not await state.dequeue(C, "sales", "dead-engine")
    await state.renew_queued(C, "sales", ["dead-engine"])  # renewing never brings one back
    assert await state.waiting(C, "sales") == 1
    clock.advance(QUEUE_LEASE)
    assert (await state.waiting(C, "sales"), await state.oldest(C, "sales")) == (0, None)
