"""Belgian numbering: normalisation to E.164 and classification."""

from __future__ import annotations

import pytest

from routing_trees.numbers import (
    NumberKind,
    is_geographic,
    number_kind,
    prefix_to_e164,
    to_e164,
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+3225551234", "+3225551234"),
        ("003225551234", "+3225551234"),
        ("025551234", "+3225551234"),
        ("02 555 12 34", "+3225551234"),
        ("02/555.12.34", "+3225551234"),
        ("(02) 555-12-34", "+3225551234"),
        ("+32 (0)2 555 12 34", "+3225551234"),
        ("0032 (0)2 555 12 34", "+3225551234"),
        (" +32 475 12 34 56 ", "+32475123456"),
        ("0475/12.34.56", "+32475123456"),
        ("+442071234567", "+442071234567"),
        ("00442071234567", "+442071234567"),
        ("+80012345678", "+80012345678"),
        ("093312345", "+3293312345"),
    ],
)
def test_accepted_forms_normalise_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "+",
        "abc",
        "3225551234",  # no + and no 0: not a form we accept
        "+0123456789",  # E.164 never starts with 0
        "+1234567890123456",  # 16 digits
        "+123456",  # too short
        "+322555123",  # Belgian NSN of 7 digits
        "+3202555123",  # Belgian NSN starting with the trunk 0
        "+32255512345678",  # Belgian NSN too long
        "02555123x",
        "+32２5551234",  # non-ASCII digit
        "anonymous",
        "0",
        "00",
    ],
)
def test_non_numbers_are_none(raw: str) -> None:
    assert to_e164(raw) is None


def test_fast_path_returns_the_same_object() -> None:
    raw = "+3225551234"
    assert to_e164(raw) is raw


@pytest.mark.parametrize(
    ("e164", "kind"),
    [
        ("+3225551234", NumberKind.GEOGRAPHIC),  # Brussels 02
        ("+3232012000", NumberKind.GEOGRAPHIC),  # Antwerp 03
        ("+3242223344", NumberKind.GEOGRAPHIC),  # Liège 04 + 7 digits
        ("+3292345678", NumberKind.GEOGRAPHIC),  # Ghent 09
        ("+3210456789", NumberKind.GEOGRAPHIC),  # Wavre 010
        ("+3216123456", NumberKind.GEOGRAPHIC),  # Leuven 016
        ("+3250334455", NumberKind.GEOGRAPHIC),  # Bruges 050
        ("+3271234567", NumberKind.GEOGRAPHIC),  # Charleroi 071
        ("+3280567890", NumberKind.GEOGRAPHIC),  # Stavelot 080
        ("+3287654321", NumberKind.GEOGRAPHIC),  # Verviers 087
        ("+3289301234", NumberKind.GEOGRAPHIC),  # Genk 089
        ("+32475123456", NumberKind.MOBILE),  # 0475 12 34 56
        ("+32456123456", NumberKind.MOBILE),
        ("+32499999999", NumberKind.MOBILE),
        ("+3280012345", NumberKind.FREEPHONE),  # 0800 12 345
        ("+3290012345", NumberKind.PREMIUM),  # 0900 12 345
        ("+3290512345", NumberKind.PREMIUM),  # 0905
        ("+3270123456", NumberKind.SHARED_COST),  # 070
        ("+3278151515", NumberKind.NATIONAL_RATE),  # 078
        ("+3277123456", NumberKind.NON_GEOGRAPHIC),  # 077
        ("+3262123456", NumberKind.BELGIAN_OTHER),  # no zone 062
        ("+3220123456", NumberKind.BELGIAN_OTHER),  # subscriber number starting 0
        ("+32312345678", NumberKind.BELGIAN_OTHER),  # 9 digits, not mobile
        ("+80012345678", NumberKind.INTERNATIONAL_FREEPHONE),
        ("+442071234567", NumberKind.FOREIGN),
        ("+31201234567", NumberKind.FOREIGN),
    ],
)
def test_classification(e164: str, kind: NumberKind) -> None:
    assert number_kind(e164) is kind
    assert is_geographic(e164) == (kind is NumberKind.GEOGRAPHIC)


def test_liege_is_not_mobile() -> None:
    assert is_geographic("+3242223344")  # 04 222 33 44: Liège
    assert not is_geographic("+32422233445")  # 0422 23 34 45: mobile length


def test_kind_descriptions_read_as_sentences() -> None:
    assert NumberKind.MOBILE.description == "a mobile number"
    assert NumberKind.FREEPHONE.description == "a freephone (0800) number"


@pytest.mark.parametrize(
    ("raw", "prefix"),
    [
        ("+3226*", "+3226"),
        ("026*", "+3226"),
        ("003226*", "+3226"),
        ("+44*", "+44"),
        ("0*", "+32"),
        ("02 55*", "+32255"),
    ],
)
def test_prefixes(raw: str, prefix: str) -> None:
    assert prefix_to_e164(raw) == prefix


@pytest.mark.parametrize(
    "raw", ["*", "+*", "00*", "+3226", "x*", "+0*", "+32 0*", "+3225551234567*"]
)
def test_bad_prefixes(raw: str) -> None:
    assert prefix_to_e164(raw) is None
