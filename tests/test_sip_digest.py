"""Digest authentication (engine/sip/digest.py): RFC vectors, parsing, nonces, verdicts."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from engine.sip.digest import (
    Credentials,
    DigestError,
    DigestServer,
    Verdict,
    ha1,
    parse_authorization,
    request_digest,
)

URI = "sip:127.0.0.1:5060"


def test_rfc_2617_example() -> None:
    c = Credentials("Mufasa", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                    "/dir/index.html", "", "MD5", "auth", "00000001", "0a4f113b")  # fmt: skip
    secret = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    assert request_digest(c, "GET", secret) == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])  # fmt: skip
def test_rfc_7616_examples(algorithm: str, expected: str) -> None:
    c = Credentials("Mufasa", "http-auth@example.org",
                    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "/dir/index.html", "",
                    algorithm, "auth", "00000001",
                    "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")  # fmt: skip
    secret = ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    assert request_digest(c, "GET", secret) == expected


def test_parse_in_any_order_with_quotes_commas_escapes_and_lws() -> None:
    c = parse_authorization(
        'digest  realm="ac\\"me" ,username = "anna", nonce="n,1", '
        'uri="sip:a@b;x=1,2", response="ABCDEF01", algorithm=SHA-256, qop=auth, '
        'nc=0000000a, cnonce="c n", opaque="ignored"'
    )
    assert c == Credentials("anna", 'ac"me', "n,1", "sip:a@b;x=1,2", "abcdef01", "SHA-256",
                            "auth", "0000000a", "c n")  # fmt: skip


@pytest.mark.parametrize("value", [
    'Basic YW5uYTpzZWNyZXQ=',
    'Digest username="anna", realm="acme", nonce="n", uri="sip:x"',  # no response
    'Digest username="anna", realm="acme", nonce="n", uri="sip:x", response="zz"',
    'Digest username="anna", username="bert", realm="a", nonce="n", uri="u", response="ab"',
    'Digest username="anna, realm="acme", nonce="n", uri="sip:x", response="ab"',
    'Digest username, realm="acme", nonce="n", uri="sip:x", response="ab"',
    'Digest username=an na, realm="acme", nonce="n", uri="sip:x", response="ab"',
    'Digest username="anna", realm="a", nonce="n", uri="u", response="ab", qop=auth',
    'Digest username="a", realm="a", nonce="n", uri="u", response="ab", qop=auth, nc=1, '
    'cnonce="c"',
    'Digest username="a\\", realm="a", nonce="n", uri="u", response="ab"',
])  # fmt: skip
def test_malformed_credentials_raise_their_own_error(value: str) -> None:
    with pytest.raises(DigestError):
        parse_authorization(value)


REALM = "acme"
HA1S = {"MD5": ha1("anna", REALM, "secret"), "SHA-256": ha1("anna", REALM, "secret", "SHA-256")}


def answer(challenge: str, password: str = "secret", nc: int = 1, uri: str = URI,
           user: str = "anna") -> Credentials:  # fmt: skip
    """What a client sends back for one WWW-Authenticate value."""
    params = dict(part.strip().split("=", 1) for part in challenge[len("Digest "):].split(","))
    nonce, realm = params["nonce"].strip('"'), params["realm"].strip('"')
    algorithm = params["algorithm"]
    c = Credentials(user, realm, nonce, uri, "", algorithm, "auth", f"{nc:08x}", "cn")
    response = request_digest(c, "REGISTER", ha1(user, realm, password, algorithm))
    return Credentials(user, realm, nonce, uri, response, algorithm, "auth", f"{nc:08x}", "cn")


@pytest.fixture
def server() -> DigestServer:
    clock = Clock()
    clock.advance(1_700_000_000)
    return DigestServer(clock, b"k" * 32, nonce_ttl=300)


def test_challenges_offer_sha256_first_then_md5_each_with_qop_auth(server: DigestServer) -> None:
    sha, md5 = server.challenges(REALM, ("MD5", "SHA-256"))
    assert sha.startswith('Digest realm="acme", nonce="') and "algorithm=SHA-256" in sha
    assert "algorithm=MD5" in md5 and 'qop="auth"' in md5 and "stale" not in md5
    assert server.challenges(REALM, ("MD5",), stale=True)[0].endswith(", stale=true")


@pytest.mark.parametrize("index", [0, 1])
def test_right_password_passes_with_either_algorithm(server: DigestServer, index: int) -> None:
    c = answer(server.challenges(REALM, ("MD5", "SHA-256"))[index])
    assert server.verify(c, "REGISTER", URI, REALM, HA1S) is Verdict.OK


def test_wrong_password_user_realm_uri_or_algorithm_is_wrong(server: DigestServer) -> None:
    challenge = server.challenges(REALM, ("MD5",))[0]
    assert server.verify(answer(challenge, "guess"), "REGISTER", URI, REALM, HA1S) is Verdict.WRONG
    good = answer(challenge)
    assert server.verify(good, "REGISTER", URI, "other", HA1S) is Verdict.WRONG
    assert server.verify(good, "REGISTER", "sip:10.0.0.1", REALM, HA1S) is Verdict.WRONG
    assert server.verify(good, "INVITE", URI, REALM, HA1S) is Verdict.WRONG
    assert server.verify(good, "REGISTER", URI, REALM, {"SHA-256": HA1S["SHA-256"]}) \
        is Verdict.WRONG  # fmt: skip
    assert server.verify(good, "REGISTER", URI, REALM, {}) is Verdict.WRONG


def test_the_uri_may_differ_in_spelling_only(server: DigestServer) -> None:
    c = answer(server.challenges(REALM, ("MD5",))[0], uri="SIP:127.0.0.1:5060")
    assert server.verify(c, "REGISTER", URI, REALM, HA1S) is Verdict.OK


def test_no_qop_is_not_accepted(server: DigestServer) -> None:
    c = answer(server.challenges(REALM, ("MD5",))[0])
    plain = Credentials(c.username, c.realm, c.nonce, c.uri, "", "MD5")
    plain = Credentials(c.username, c.realm, c.nonce, c.uri,
                        request_digest(plain, "REGISTER", HA1S["MD5"]))  # fmt: skip
    assert server.verify(plain, "REGISTER", URI, REALM, HA1S) is Verdict.WRONG


def test_an_expired_nonce_is_stale_with_a_right_response(server: DigestServer) -> None:
    challenge = server.challenges(REALM, ("MD5",))[0]
    server.clock.advance(299)  # type: ignore[attr-defined]
    assert server.verify(answer(challenge), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    server.clock.advance(1)  # type: ignore[attr-defined]
    assert server.verify(answer(challenge, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    # A stale nonce never excuses a wrong password.
    assert server.verify(answer(challenge, "guess", nc=3), "REGISTER", URI, REALM, HA1S) \
        is Verdict.WRONG  # fmt: skip


def test_a_nonce_of_another_secret_or_realm_or_made_up_is_stale(server: DigestServer) -> None:
    other = DigestServer(server.clock, b"x" * 32)
    foreign = answer(other.challenges(REALM, ("MD5",))[0])
    assert server.verify(foreign, "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    made_up = answer('Digest realm="acme", nonce="zz.1.2", algorithm=MD5')
    assert server.verify(made_up, "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    for_bert = server.challenges("bert-corp", ("MD5",))[0].replace("bert-corp", REALM)
    assert server.verify(answer(for_bert), "REGISTER", URI, REALM, HA1S) is Verdict.STALE


def test_a_replayed_nonce_count_is_stale_a_higher_one_passes(server: DigestServer) -> None:
    challenge = server.challenges(REALM, ("MD5",))[0]
    first = answer(challenge)
    assert server.verify(first, "REGISTER", URI, REALM, HA1S) is Verdict.OK
    assert server.verify(first, "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    assert server.verify(answer(challenge, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    assert server.verify(answer(challenge, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.STALE


def test_each_challenge_has_its_own_nonce(server: DigestServer) -> None:
    a, b = (answer(server.challenges(REALM, ("MD5",))[0]) for _ in range(2))
    assert a.nonce != b.nonce  # two phones in the same second do not share nonce counts
    assert server.verify(a, "REGISTER", URI, REALM, HA1S) is Verdict.OK
    assert server.verify(b, "REGISTER", URI, REALM, HA1S) is Verdict.OK


def test_a_full_nonce_table_never_forgets_a_live_nonce(server: DigestServer) -> None:
    """Forgetting a live nonce would reset its count and let a captured request be replayed."""
    small = DigestServer(server.clock, server.secret, tracked=2)
    first = small.challenges(REALM, ("MD5",))[0]
    assert small.verify(answer(first), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    server.clock.advance(100)  # type: ignore[attr-defined]
    second = small.challenges(REALM, ("MD5",))[0]
    assert small.verify(answer(second), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    third = small.challenges(REALM, ("MD5",))[0]
    # Full of live nonces: a new one is answered stale (a fresh challenge), ...
    assert small.verify(answer(third), "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    # ... the replays stay refused, and the nonces in the table keep working.
    assert small.verify(answer(first), "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    assert small.verify(answer(second), "REGISTER", URI, REALM, HA1S) is Verdict.STALE
    assert small.verify(answer(first, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    server.clock.advance(200)  # type: ignore[attr-defined]  # the first nonce expired
    assert small.verify(answer(third), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    assert small.verify(answer(second, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.OK
    assert small.verify(answer(second, nc=2), "REGISTER", URI, REALM, HA1S) is Verdict.STALE
