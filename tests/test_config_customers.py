"""Customers (contacts, API token, legal entities, number entries), smtp, drs prompts, lockout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from configkit import problems_of

from engine.config import DRS_PROMPT_KEYS, SmtpSettings, load_config
from engine.passwords import hash_password
from routing_trees.source import SourceError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "media" / "prompts" / "drs"
TOKEN = hash_password("acme-token")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text("trees: trees/\n" + text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    return problems_of(write(tmp_path, text))


def test_a_customer_with_contacts_token_and_affiliated_numbers(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f"""\
customers:
  acme:
    formula: classic
    legal_entity: "Acme Logistics NV"
    contacts: [noc@acme.example, "first.last+drs@mail.acme-group.example"]
    api_token: "{TOKEN}"
    numbers:
      - "02 555 12 34"
      - {{number: "+3225551235", holder: "Acme Services BV"}}
      - {{number: "0032 9 264 31 11", ported: true, flags: []}}
      - {{number: "+3250448000", ported: false}}
  globex:
    formula: drs
    numbers: ["+3232012000", {{number: "+3232012001", holder: "Globex Antwerpen BV"}}]
"""))
    acme, globex = config.customers["acme"], config.customers["globex"]
    assert acme.numbers == ("+3225551234", "+3225551235", "+3292643111", "+3250448000")
    assert acme.legal_entity == "Acme Logistics NV"
    assert acme.contacts == ("noc@acme.example", "first.last+drs@mail.acme-group.example")
    assert acme.api_token == TOKEN
    assert dict(acme.holders) == {
        "+3225551234": "Acme Logistics NV",
        "+3225551235": "Acme Services BV",
        "+3292643111": "Acme Logistics NV",
        "+3250448000": "Acme Logistics NV",
    }
    assert acme.ported == {"+3292643111"}
    assert acme.profile().numbers == set(acme.numbers)  # a ported number's tree still loads
    # Without a legal entity, the customer's id holds its numbers.
    assert dict(globex.holders) == {"+3232012000": "globex", "+3232012001": "Globex Antwerpen BV"}
    assert (globex.contacts, globex.api_token, globex.legal_entity, globex.ported) == (
        (), None, None, frozenset())  # fmt: skip


def test_customer_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
customers:
  acme:
    formula: classic
    legal_entity: ""
    contacts: [noc@acme.example, "bob@", noc@acme.example, "Bob <bob@acme.example>", a@b]
    api_token: "acme-token"
    numbers:
      - "+3225551234"
      - {number: "02 555 12 34"}
      - {number: "+3225551236", holder: "", ported: "si"}
      - {number: "+3225551237", flags: [cnip, one_company_numbr]}
      - {numbr: "+3225551238"}
      - [x]
      - {number: "0456 12 34 56", holder: "Acme Mobile NV"}
      - {number: "not a number"}
      - "+3225551239"
      - {number: "+3225551239", flags: [enterprise_office_switch]}
""") == [
        "F:5:19: customer 'acme' legal_entity must not be empty",
        "F:6:34: customer 'acme' contacts: 'bob@' is not an e-mail address "
        "(expected name@domain, e.g. noc@example.com)",
        "F:6:42: customer 'acme' contacts: noc@acme.example is listed twice",
        "F:6:60: customer 'acme' contacts: 'Bob <bob@acme.example>' is not an e-mail address "
        "(expected name@domain, e.g. noc@example.com)",
        "F:6:86: customer 'acme' contacts: 'a@b' is not an e-mail address "
        "(expected name@domain, e.g. noc@example.com)",
        "F:7:16: customer 'acme': api_token must be a hash made by `vms passwd`, not a token",
        "F:10:18: customer 'acme': number +3225551234 is listed twice (first on line 9)",
        "F:11:41: customer 'acme' number +3225551236 holder must not be empty",
        "F:11:53: customer 'acme' number +3225551236 ported must be true or false, not 'si'",
        "F:12:41: customer 'acme': +3225551237 carries Calling Name Identification "
        "Presentation (CNIP); VMS serves geographic numbers without CNIP, Enterprise Office "
        "Switch or One Company Number only",
        "F:12:47: customer 'acme' number +3225551237: unknown flag 'one_company_numbr' (did you "
        "mean 'one_company_number'?) (flags: cnip, enterprise_office_switch, one_company_number)",
        "F:13:9: a number of customer 'acme' lacks the required key 'number'",
        "F:13:10: unknown key 'numbr' in a number of customer 'acme' (did you mean 'number'?)",
        "F:14:9: each entry of customer 'acme' numbers must be a number or a mapping "
        "{number, holder, ported, flags}, not a list",
        "F:15:18: customer 'acme': +32456123456 is a mobile number; "
        "VMS serves geographic numbers only",
        "F:16:18: customer 'acme': 'not a number' is not a phone number",
        "F:18:41: customer 'acme': +3225551239 carries Enterprise Office Switch; VMS serves "
        "geographic numbers without CNIP, Enterprise Office Switch or One Company Number only",
    ]


def test_a_number_shared_across_customers_in_either_form(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
customers:
  acme: {formula: classic, numbers: ["+3225551234"]}
  globex: {formula: drs, numbers: [{number: "02 555 12 34", holder: "Globex NV"}]}
""") == ["F:4:3: number +3225551234 belongs to both customer 'acme' and customer 'globex'"]


def test_smtp(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "smtp: {host: 127.0.0.1, from: vms@example.net}\n"))
    assert config.smtp == SmtpSettings(host="127.0.0.1", sender="vms@example.net")
    assert (config.smtp.port, config.smtp.username, config.smtp.starttls) == (25, None, False)
    config = load_config(write(tmp_path, """\
smtp:
  host: smtp.example.net
  port: 587
  from: noreply@vms.example.net
  username: vms
  password: "s3cret"
  starttls: true
"""))
    assert config.smtp == SmtpSettings(host="smtp.example.net", port=587,
                                       sender="noreply@vms.example.net", username="vms",
                                       password="s3cret", starttls=True)  # fmt: skip
    assert "s3cret" not in repr(config)
    assert load_config(write(tmp_path, "")).smtp is None


def test_smtp_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
smtp:
  host: "smtp.example.com:587"
  from: "vms@"
  port: 70000
  username: vms
  starttls: maybe
""") == [
        "F:3:9: smtp.host: 'smtp.example.com:587' is not a host name or IP address "
        "(the port goes in its own key)",
        "F:4:9: smtp.from: 'vms@' is not an e-mail address "
        "(expected name@domain, e.g. noc@example.com)",
        "F:5:9: smtp.port must be at most 65535, not 70000",
        "F:6:3: smtp.username needs smtp.password: give both to log in, or neither",
        "F:7:13: smtp.starttls must be true or false, not 'maybe'",
    ]
    assert problems(tmp_path, "smtp: {port: 25, sender: a@example.net}\n") == [
        "F:2:7: smtp lacks the required key 'host'",
        "F:2:7: smtp lacks the required key 'from'",
        "F:2:18: unknown key 'sender' in smtp",
    ]
    assert problems(tmp_path, "smtp: {host: h.example.net, from: a@example.net, password: x}\n") \
        == ["F:2:50: smtp.password needs smtp.username: give both to log in, or neither"]


def wav(path: Path, rate: int, channels: int, subtype: str) -> None:
    samples = np.zeros((rate // 10, channels), dtype=np.int16)
    soundfile.write(str(path), samples, rate, subtype=subtype, format="WAV")


def test_drs_prompts_configured_and_shipped(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    shutil.copy(ROOT / "routing_trees" / "examples" / "prompts" / "closed-nl.wav",
                tmp_path / "prompts" / "goodbye-nl.wav")  # fmt: skip
    wav(tmp_path / "prompts" / "locked.wav", 8000, 1, "ULAW")  # telephony-ready plays as is
    config = load_config(write(tmp_path, """\
drs:
  prompts: {goodbye: prompts/goodbye-nl.wav, locked: prompts/locked.wav}
"""))
    assert tuple(config.drs_prompts) == DRS_PROMPT_KEYS
    assert config.drs_prompts["goodbye"] == tmp_path / "prompts" / "goodbye-nl.wav"
    assert config.drs_prompts["locked"] == tmp_path / "prompts" / "locked.wav"
    assert config.drs_prompts["password"] == SHIPPED / "password.wav"
    assert load_config(write(tmp_path, "")).drs_prompts == {
        key: SHIPPED / f"{key}.wav" for key in DRS_PROMPT_KEYS
    }


def test_drs_prompt_problems(tmp_path: Path) -> None:
    wav(tmp_path / "cd.wav", 44100, 2, "PCM_16")
    (tmp_path / "notes.wav").write_text("not audio")
    assert problems(tmp_path, """\
drs:
  prompts:
    goodbye: missing.wav
    locked: cd.wav
    password: notes.wav
    hello: cd.wav
""") == [
        "F:4:14: drs.prompts.goodbye: missing.wav does not exist",
        "F:5:13: drs.prompts.locked: cd.wav is PCM 16 bit, stereo, 44100 Hz; a prompt must be "
        "PCM 11025 Hz, 8 bit, mono WAV, or a telephony-ready 8000 Hz mono WAV "
        "(PCM 16 bit, G.711 µ-law or A-law)",
        "F:6:15: drs.prompts.password: notes.wav is not a sound file (it cannot be read as "
        "audio); a prompt must be a PCM 11025 Hz, 8 bit, mono WAV file, or a telephony-ready "
        "8000 Hz mono WAV (PCM 16 bit, G.711 µ-law or A-law)",
        "F:7:5: unknown key 'hello' in drs.prompts",
    ]


def test_drs_lockout(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).drs_lockout == (3, 15.0)
    assert load_config(write(tmp_path, "drs: {lockout: {attempts: 5}}\n")).drs_lockout == (5, 15.0)
    config = load_config(write(tmp_path, "drs: {lockout: {attempts: 2, minutes: 0.5}}\n"))
    assert config.drs_lockout == (2, 0.5)
    assert problems(tmp_path, "drs: {lockout: {attempts: 0, minutes: soon, tries: 3}}\n") == [
        "F:2:27: drs.lockout.attempts must be at least 1, not 0",
        "F:2:39: drs.lockout.minutes must be a number, not 'soon'",
        "F:2:45: unknown key 'tries' in drs.lockout",
    ]


def test_the_demo_configuration_shows_an_affiliated_entity() -> None:
    acme = load_config(ROOT / "config" / "vms.yaml").customers["acme"]
    assert acme.holders["+3225551235"] != acme.holders["+3225551234"] == acme.legal_entity


def test_a_customer_number_of_two_customers_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "vms.yaml"
    (tmp_path / "trees").mkdir()
    config.write_text(
        "trees: trees/\n"
        "customers:\n"
        "  acme: {formula: drs, numbers: ['+3225551234'], customer_number: '4711'}\n"
        "  initech: {formula: drs, numbers: ['+3292001000'], customer_number: '4711'}\n"
    )
    with pytest.raises(SourceError) as caught:
        load_config(config)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (4, 3)
    assert problem.message == ("customer_number 4711 belongs to both customer 'acme' and "
                               "customer 'initech'")  # fmt: skip
