"""Which numbers VMS may serve: the Belgian numbering plan, written as people write numbers.

Every Belgian case is checked in its three forms (national ``0...``,
international ``0032...`` and E.164 ``+32...``), so a rule cannot hold for
one form and not another.
"""

from __future__ import annotations

import pytest

from routing_trees.numbers import (
    NUMBER_FLAGS,
    NumberKind,
    flag_problem,
    number_kind,
    serving_problem,
    to_e164,
)

G, M, F, P = NumberKind.GEOGRAPHIC, NumberKind.MOBILE, NumberKind.FREEPHONE, NumberKind.PREMIUM
OTHER = NumberKind.BELGIAN_OTHER

#: National forms as printed, with what each is.
BELGIAN = [
    ("02 511 18 00", G),  # Brussels
    ("02 226 88 88", G),  # Brussels (BIPT's own number)
    ("03 338 20 00", G),  # Antwerp
    ("04 221 80 11", G),  # Liège: zone 4 and seven digits
    ("04 366 21 11", G),  # Liège
    ("09 264 31 11", G),  # Ghent
    ("09 330 12 34", G),  # Ghent
    ("09 412 34 56", G),  # Ghent
    ("010 47 21 11", G),  # Wavre
    ("011 23 95 11", G),  # Hasselt
    ("012 39 02 11", G),  # Tongeren
    ("013 35 12 34", G),  # Diest
    ("014 44 12 34", G),  # Turnhout
    ("015 29 76 00", G),  # Mechelen
    ("016 27 20 00", G),  # Leuven
    ("019 33 12 34", G),  # Waremme
    ("050 44 80 00", G),  # Bruges
    ("051 26 12 34", G),  # Roeselare
    ("052 25 12 34", G),  # Dendermonde
    ("053 72 12 34", G),  # Aalst
    ("054 31 12 34", G),  # Ninove
    ("055 23 12 34", G),  # Ronse
    ("056 27 12 34", G),  # Kortrijk
    ("057 45 12 34", G),  # Ypres
    ("058 33 12 34", G),  # Veurne
    ("059 80 12 34", G),  # Ostend
    ("060 21 12 34", G),  # Chimay
    ("061 22 12 34", G),  # Libramont
    ("063 24 12 34", G),  # Arlon
    ("064 27 12 34", G),  # La Louvière
    ("065 40 12 34", G),  # Mons
    ("067 88 12 34", G),  # Nivelles
    ("068 26 12 34", G),  # Ath
    ("069 33 12 34", G),  # Tournai
    ("071 86 12 34", G),  # Charleroi
    ("080 29 12 34", G),  # Stavelot
    ("081 24 12 34", G),  # Namur
    ("082 22 12 34", G),  # Dinant
    ("083 21 12 34", G),  # Ciney
    ("084 32 12 34", G),  # Marche-en-Famenne
    ("085 21 12 34", G),  # Huy
    ("086 21 12 34", G),  # Durbuy
    ("087 32 12 34", G),  # Verviers
    ("089 65 12 34", G),  # Genk
    ("0456 12 34 56", M),  # ten national digits starting 04: mobile
    ("0460 12 34 56", M),
    ("0470 12 34 56", M),
    ("0477 99 88 77", M),
    ("0485 12 34 56", M),
    ("0499 12 34 56", M),
    ("0800 12 345", F),
    ("0800 99 999", F),
    ("0900 12 345", P),
    ("0901 12 345", P),
    ("0902 12 345", P),
    ("0903 12 345", P),
    ("0905 12 345", P),
    ("0906 12 345", P),
    ("0909 12 345", P),
    ("070 22 33 44", NumberKind.SHARED_COST),
    ("078 15 15 15", NumberKind.NATIONAL_RATE),
    ("078 05 05 05", NumberKind.NATIONAL_RATE),
    ("077 12 34 56", NumberKind.NON_GEOGRAPHIC),  # machine-to-machine
    ("062 12 34 56", OTHER),  # no zone 062
    ("066 12 34 56", OTHER),  # no zone 066
    ("072 12 34 56", OTHER),
    ("088 12 34 56", OTHER),
    ("017 12 34 56", OTHER),
    ("02 012 34 56", OTHER),  # a subscriber number never starts with 0
    ("050 01 23 45", OTHER),
    ("04 712 34 56", OTHER),  # a mobile number one digit short, not Liège
    ("04 912 34 56", OTHER),
    ("09 812 34 56", OTHER),  # Ghent numbers start 2-4
    ("080 11 23 45", OTHER),  # zone 80 numbers start 2-8
    ("0312 34 56 78", OTHER),  # ten digits, but not 04: no such number
]


def forms(national: str) -> list[str]:
    digits = national[1:]
    return [national, "0032 " + digits, "+32 " + digits, "+32 (0)" + digits]


@pytest.mark.parametrize(("national", "kind"), BELGIAN)
def test_belgian_numbers_in_every_form(national: str, kind: NumberKind) -> None:
    e164 = "+32" + national[1:].replace(" ", "")
    for written in forms(national):
        assert to_e164(written) == e164, written
    assert number_kind(e164) is kind


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("+800 1234 5678", NumberKind.INTERNATIONAL_FREEPHONE),
        ("00800 1234 5678", NumberKind.INTERNATIONAL_FREEPHONE),
        ("+33 1 23 45 67 89", NumberKind.FOREIGN),
        ("+31 20 123 4567", NumberKind.FOREIGN),
        ("0044 20 7123 4567", NumberKind.FOREIGN),
        ("+352 27 12 34", NumberKind.FOREIGN),
    ],
)
def test_non_belgian_numbers(written: str, kind: NumberKind) -> None:
    e164 = to_e164(written)
    assert e164 is not None
    assert number_kind(e164) is kind


#: BIPT's two-digit zones (one-digit: 2 Brussels, 3 Antwerp, 4 Liège, 9 Ghent).
TWO_DIGIT_ZONES = {
    10, 11, 12, 13, 14, 15, 16, 19, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
    60, 61, 63, 64, 65, 67, 68, 69, 71, 80, 81, 82, 83, 84, 85, 86, 87, 89,
}  # fmt: skip


def test_the_zones_are_the_numbering_plan_s() -> None:
    found = {z for z in range(10, 100) if str(z)[0] in "15678" and
             number_kind(f"+32{z}234567") is G}  # fmt: skip
    assert found == TWO_DIGIT_ZONES
    for zone in "2349":
        assert number_kind(f"+32{zone}2345678") is G
        assert number_kind(f"+32{zone}1345678") is OTHER


@pytest.mark.parametrize(
    ("e164", "message"),
    [
        ("+32475123456", "+32475123456 is a mobile number; VMS serves geographic numbers only"),
        ("+3280012345", "+3280012345 is a freephone (0800) number; "
                        "VMS serves geographic numbers only"),
        ("+3290312345", "+3290312345 is a premium-rate (090x) number; "
                        "VMS serves geographic numbers only"),
        ("+3270223344", "+3270223344 is a shared-cost (070) number; "
                        "VMS serves geographic numbers only"),
        ("+3278151515", "+3278151515 is a national-rate (078) number; "
                        "VMS serves geographic numbers only"),
        ("+3277123456", "+3277123456 is a non-geographic (077) number; "
                        "VMS serves geographic numbers only"),
        ("+80012345678", "+80012345678 is an international freephone (+800) number; "
                         "VMS serves geographic numbers only"),
        ("+3247123456", "+3247123456 is not a geographic number of the Belgian numbering "
                        "plan; VMS serves geographic numbers only"),
        ("+33123456789", "+33123456789 is a foreign number; VMS serves geographic numbers only"),
        ("+3242218011", None),
    ],
)  # fmt: skip
def test_serving_problems_say_what_the_number_is(e164: str, message: str | None) -> None:
    assert serving_problem(e164) == message


@pytest.mark.parametrize(
    ("flag", "service"),
    [
        ("cnip", "Calling Name Identification Presentation (CNIP)"),
        ("enterprise_office_switch", "Enterprise Office Switch"),
        ("one_company_number", "One Company Number"),
    ],
)
def test_flagged_numbers_are_refused_with_their_service(flag: str, service: str) -> None:
    assert flag_problem("+3225551234", flag) == (
        f"+3225551234 carries {service}; VMS serves geographic numbers without CNIP, "
        "Enterprise Office Switch or One Company Number only"
    )


def test_the_flags_are_the_three_excluded_services() -> None:
    assert set(NUMBER_FLAGS) == {"cnip", "enterprise_office_switch", "one_company_number"}
