"""The call detail record and the billing rules."""

from __future__ import annotations

import pytest

from cdrkit import CALLED, T0, leg
from engine.cdr import billing
from engine.cdr.record import CONTRACT_FIELDS, FIELDS, OUTCOMES, LegRecord


def test_fields_start_with_the_contracts_in_its_order() -> None:
    assert CONTRACT_FIELDS == (
        "call_id", "leg", "customer", "caller", "called", "destination", "route", "outcome",
        "start", "answer", "end", "duration", "sip_code", "billed_to",
    )  # fmt: skip
    assert FIELDS[: len(CONTRACT_FIELDS)] == CONTRACT_FIELDS
    assert set(FIELDS) == set(LegRecord.__dataclass_fields__)
    assert OUTCOMES == ("answered", "busy", "no_answer", "unreachable", "overflow",
                        "cancelled", "rejected", "failed")  # fmt: skip


def test_finish_sets_duration_from_the_answer() -> None:
    answered = leg("c", 1)
    answered.ringing = T0 + 1
    answered.answer = T0 + 3
    answered.finish(T0 + 63.5, "answered", 200)
    assert (answered.outcome, answered.duration, answered.sip_code) == ("answered", 60.5, 200)
    busy = leg("c", 2).finish(T0 + 1, "busy", 486, reason="busy here")
    assert (busy.duration, busy.closed, busy.reason) == (0.0, True, "busy here")


@pytest.mark.parametrize(("change", "message"), [
    ({"outcome": "lost", "end": T0 + 1}, "outcome 'lost' is not one of answered, busy"),
    ({"outcome": "busy"}, "outcome and end are set together"),
    ({"end": T0 + 1}, "outcome and end are set together"),
    ({"caller": "02600112"}, "caller '02600112' is not E.164"),
    ({"called": "5551234"}, "called '5551234' is not E.164"),
    ({"answer": T0 - 1}, "answer (1796111999.0) is before start"),
    ({"duration": 3.0}, "duration is the answered seconds"),
    ({"outcome": "answered", "end": T0 + 1}, "an answered leg needs its answer time"),
    ({"sip_code": 99}, "sip_code 99 is not a SIP status"),
    ({"billed_to": "acme"}, "billed_to is for rerouted legs"),
    ({"leg": -1}, "leg must be 0"),
    ({"call_id": ""}, "call_id is empty"),
])  # fmt: skip
def test_inconsistent_records_are_refused(change: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"call_id": "c", "leg": 0, "customer": "acme",
                                 "caller": None, "called": CALLED, "start": T0}  # fmt: skip
    fields.update(change)
    with pytest.raises(ValueError, match="call detail record") as info:
        LegRecord(**fields)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_a_bad_outcome_given_to_finish_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome 'hangup'"):
        leg("c", 1).finish(T0 + 1, "hangup")


def test_anonymous_caller_is_none() -> None:
    assert leg("c", caller=None).caller is None


def test_other_operator_by_prefix() -> None:
    prefixes = ("+3247", "+3248")
    assert billing.other_operator("+32475123456", prefixes)
    assert not billing.other_operator("+32495123456", prefixes)
    assert not billing.other_operator(None, prefixes)
    assert not billing.other_operator("+32475123456", ())


def test_billed_to_the_holder_of_the_called_number_on_rerouted_legs() -> None:
    assert billing.billed_to(0, "acme") is None  # the caller's own call
    assert billing.billed_to(1, "acme") == "acme"
    assert billing.billed_to(3, "acme") == "acme"


def test_stamp_sets_both_billing_fields() -> None:
    prefixes = ("+3247",)
    outgoing = billing.stamp(leg("c", 1, destination="+32475123456", billed_to=None), "acme",
                             prefixes)  # fmt: skip
    assert (outgoing.billed_to, outgoing.other_operator) == ("acme", True)
    ours = billing.stamp(leg("c", 2, destination="+3225559999", billed_to=None), "acme", prefixes)
    assert (ours.billed_to, ours.other_operator) == ("acme", False)
    inbound = billing.stamp(leg("c", 0), "acme", prefixes)
    assert (inbound.billed_to, inbound.other_operator) == (None, False)
