"""/api/v1/customers/ID/acm over real HTTP: changes through the directory, presence in the state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_twisted
from acmdirkit import TOKENS, directory_on, write_config
from twisted.internet import reactor
from twisted.internet.task import Clock

from apikit import Api
from engine.acm.directory import AcmDirectory
from engine.api_acm import METHODS, acm_handler
from engine.modes.store import ModeStore
from engine.state.memory import MemoryState

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport")

ACME = f"Bearer acme:{TOKENS['acme']}"
URL = "/api/v1/customers/acme/acm"


@pytest.fixture
def state() -> MemoryState:
    return MemoryState(Clock())


@pytest.fixture
def served(tmp_path: Path, make_api: Callable[..., Api],
           state: MemoryState) -> Iterator[tuple[Api, AcmDirectory]]:  # fmt: skip
    config = write_config(tmp_path)
    with ModeStore.in_data_dir(config.data_dir) as store:
        directory = directory_on(config, Clock(), auditor=store)
        api = make_api(config=config, store=store)
        api.v1.add("acm", METHODS, acm_handler(reactor, state, directory))
        yield api, directory
        directory.close()


@pytest_twisted.ensureDeferred
async def test_get_lists_groups_operators_and_presence_never_the_pin(
    served: tuple[Api, AcmDirectory],
) -> None:
    api, _ = served
    status, _, doc = await api.call("GET", URL, ACME)
    assert status == 200
    assert set(doc["groups"]) == {"sales", "support"}
    assert doc["groups"]["sales"]["operators"] == {"anna": 3, "bert": 1}
    assert doc["operators"]["bert"]["groups"] == {"sales": {"level": 1, "state": "logged_out"},
                                                  "support": {"level": 2, "state": "logged_out"}}
    assert "pin" not in str(doc) and "1234" not in str(doc)


@pytest_twisted.ensureDeferred
async def test_put_and_delete_an_operator(served: tuple[Api, AcmDirectory]) -> None:
    api, directory = served
    body = {"numbers": ["+32470001106"], "pin": "5678", "groups": {"support": 4}}
    status, _, doc = await api.call("PUT", f"{URL}/operators/carla", ACME, body)
    assert status == 200, doc
    assert (doc["operator"], doc["state"], doc["numbers"]) == ("carla", "logged_out",
                                                               ["+32470001106"])  # fmt: skip
    assert "pin" not in doc
    assert directory.verify_pin("acme", "carla", "5678")
    status, _, doc = await api.call("GET", f"{URL}/operators/carla", ACME)
    assert status == 200 and doc["groups"] == {"support": {"level": 4, "state": "logged_out"}}
    assert (await api.call("DELETE", f"{URL}/operators/carla", ACME))[0] == 200
    status, _, doc = await api.call("GET", f"{URL}/operators/carla", ACME)
    assert (status, doc) == (404, {"error": "customer 'acme' has no operator 'carla'"})


@pytest_twisted.ensureDeferred
async def test_errors_name_the_field_and_say_why(served: tuple[Api, AcmDirectory]) -> None:
    api, _ = served
    body = {"numbers": ["+32470001106"], "pin": "5678", "groups": {"support": 12}}
    status, _, doc = await api.call("PUT", f"{URL}/operators/carla", ACME, body)
    assert (status, doc) == (400, {"error": "operators.carla.groups.support must be at most 9, "
                                            "not 12"})  # fmt: skip
    status, _, doc = await api.call("PUT", f"{URL}/groups/vip", ACME, b"{nope")
    assert (status, doc) == (400, {"error": "the body is not JSON"})
    status, _, doc = await api.call("DELETE", f"{URL}/groups/support", ACME)
    assert status == 409 and "still has operators (bert)" in doc["error"]
    status, _, _ = await api.call("GET", "/api/v1/customers/initech/acm", ACME)
    assert status == 403
    initech = f"Bearer initech:{TOKENS['initech']}"
    status, _, doc = await api.call("GET", "/api/v1/customers/initech/acm", initech)
    assert status == 403 and "has not ordered Agent Contact Management" in doc["error"]


@pytest_twisted.ensureDeferred
async def test_groups_are_made_filled_emptied_and_deleted(
    served: tuple[Api, AcmDirectory],
) -> None:
    api, _ = served
    status, _, doc = await api.call("PUT", f"{URL}/groups/vip", ACME, {"wrap_up": 5})
    assert (status, doc["wrap_up"], doc["operators"]) == (200, 5, {})
    anna = {"numbers": ["+32470001104"], "groups": {"sales": 3, "vip": 9}}
    assert (await api.call("PUT", f"{URL}/operators/anna", ACME, anna))[0] == 200
    anna["groups"] = {"sales": 3}
    assert (await api.call("PUT", f"{URL}/operators/anna", ACME, anna))[0] == 200
    assert (await api.call("DELETE", f"{URL}/groups/vip", ACME))[0] == 200
    assert (await api.call("PUT", f"{URL}/supervisors", ACME, ["zoe"]))[2] == {
        "supervisors": ["zoe"]}


@pytest_twisted.ensureDeferred
async def test_login_break_resume_logout_reach_the_shared_state(
    served: tuple[Api, AcmDirectory], state: MemoryState,
) -> None:
    api, _ = served

    async def seen(group: str = "support") -> str:
        return {i.operator: i.state for i in await state.operators("acme", group)}["bert"]

    status, _, doc = await api.call("POST", f"{URL}/operators/bert/login", ACME)
    assert (status, doc["state"], await seen()) == (200, "available", "available")
    status, _, doc = await api.call("POST", f"{URL}/operators/bert/break", ACME, {})
    assert (status, doc) == (400, {"error": 'a break needs a reason: {"reason": "lunch"}'})
    status, _, doc = await api.call("POST", f"{URL}/operators/bert/break", ACME,
                                    {"reason": "lunch"})  # fmt: skip
    assert (status, doc["reason"], await seen("sales")) == (200, "lunch", "break")
    assert (await api.call("POST", f"{URL}/operators/bert/resume", ACME))[0] == 200
    assert await seen() == "available"
    assert await state.reserve("acme", ["bert"], "call-1", 60.0) == "bert"
    assert await state.move_operator("acme", "bert", "call-1", "on_call", 60.0)
    status, _, doc = await api.call("POST", f"{URL}/operators/bert/logout", ACME)
    assert status == 409 and "is on a call, so it cannot be logged out now" in doc["error"]
    assert (await api.call("DELETE", f"{URL}/operators/bert", ACME))[0] == 409
    assert await state.move_operator("acme", "bert", "call-1", "wrap_up", 60.0)
    assert (await api.call("POST", f"{URL}/operators/bert/resume", ACME))[0] == 409
    assert (await api.call("POST", f"{URL}/operators/bert/logout", ACME))[0] == 200
    assert await seen() == "logged_out"
