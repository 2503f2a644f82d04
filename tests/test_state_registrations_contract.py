"""The registrations part of the SharedState contract: softphone bindings and their expiry.

Runs against the memory backend and a real ``redis-server`` with the
fixtures of tests/test_state_contract.py (a ``task.Clock`` the tests move,
a fresh key prefix per Redis test).
"""

from __future__ import annotations

import pytest_twisted
import test_state_contract as contract

from engine.state.interface import Binding

Backend = contract.Backend
backend = contract.backend
redis_server = contract.redis_server

AOR = "anna@acme"
PHONE = "sip:anna@192.0.2.10:5062;transport=udp"
OTHER = "sip:anna@198.51.100.4:5060"
NAT = ("203.0.113.9", 40123)


@pytest_twisted.ensureDeferred
async def test_a_binding_reads_back_with_its_source_and_remaining_seconds(
    backend: Backend,
) -> None:
    state = backend.state
    assert await state.bindings(AOR) == []
    await state.bind(AOR, PHONE, NAT, 600)
    backend.advance(99.5)
    assert await state.bindings(AOR) == [Binding(PHONE, NAT, 501)]  # rounded up, never 0
    assert await state.bindings("bert@acme") == []


@pytest_twisted.ensureDeferred
async def test_bindings_expire_each_on_its_own_clock(backend: Backend) -> None:
    state = backend.state
    await state.bind(AOR, PHONE, NAT, 60)
    await state.bind(AOR, OTHER, ("198.51.100.4", 5060), 120)
    backend.advance(60)
    assert await state.bindings(AOR) == [Binding(OTHER, ("198.51.100.4", 5060), 60)]
    backend.advance(59.999)
    assert [b.expires for b in await state.bindings(AOR)] == [1]
    backend.advance(0.001)
    assert await state.bindings(AOR) == []


@pytest_twisted.ensureDeferred
async def test_a_refresh_replaces_the_expiry_and_the_source(backend: Backend) -> None:
    state = backend.state
    await state.bind(AOR, PHONE, NAT, 60)
    backend.advance(50)
    await state.bind(AOR, PHONE, ("203.0.113.9", 40999), 300)  # the NAT mapping changed
    backend.advance(100)
    assert await state.bindings(AOR) == [Binding(PHONE, ("203.0.113.9", 40999), 200)]


@pytest_twisted.ensureDeferred
async def test_unbind_one_contact_or_all_of_them(backend: Backend) -> None:
    state = backend.state
    await state.bind(AOR, PHONE, NAT, 60)
    await state.bind(AOR, OTHER, NAT, 60)
    await state.bind("bert@acme", OTHER, NAT, 60)
    await state.unbind(AOR, PHONE)
    await state.unbind(AOR, "sip:never@registered")
    assert [b.contact for b in await state.bindings(AOR)] == [OTHER]
    await state.unbind(AOR, None)
    assert await state.bindings(AOR) == []
    assert [b.contact for b in await state.bindings("bert@acme")] == [OTHER]


@pytest_twisted.ensureDeferred
async def test_any_aor_text_is_its_own_key(backend: Backend) -> None:
    state = backend.state
    await state.bind("a:b@c", PHONE, ("2001:db8::1", 5060), 30)
    await state.bind("a", OTHER, NAT, 30)
    assert await state.bindings("a:b@c") == [Binding(PHONE, ("2001:db8::1", 5060), 30)]
    assert [b.contact for b in await state.bindings("a")] == [OTHER]
