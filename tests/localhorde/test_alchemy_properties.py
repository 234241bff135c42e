"""Property tests of the alchemy input validation: whatever JSON arrives, the answer is the server's
and never a 500.

Each test serves one local horde on its own event loop and drives every Hypothesis example through
HTTP, so schema validation, reqparse, the error middleware and the handlers are all exercised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from horde_worker_regen.localhorde.alchemy_entities import FormState
from horde_worker_regen.localhorde.alchemy_forms import FORM_NAMES
from horde_worker_regen.localhorde.app import create_app
from horde_worker_regen.localhorde.clock import FakeClock
from horde_worker_regen.localhorde.config import LocalHordeConfig
from horde_worker_regen.localhorde.context import LocalHorde
from horde_worker_regen.localhorde.entities import User
from horde_worker_regen.localhorde.pop import sanitize_name
from tests.localhorde.alchemy_support import ALCHEMIST, png_b64, queue_alchemy

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
MISSING = object()
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
FORM_NAME = st.sampled_from(FORM_NAMES) | st.text(max_size=12)
ALIAS = st.builds("{}#{}".format, st.text(max_size=6), st.integers(0, 99))
POP_FIELDS = ("name", "priority_usernames", "forms", "amount", "bridge_agent", "threads", "max_tiles")


class Served:
    """One local horde, a client of it and a trusted alchemist owner, on a private event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, horde: LocalHorde, client: TestClient[Any, Any]) -> None:
        self.loop, self.horde, self.client = loop, horde, client
        self.owner = horde.add_user("owner", trusted=True, kudos=100, worker_invited=10**6)
        self.requester = horde.add_user("requester", kudos=10**6)

    def post(self, path: str, body: Any, user: User | None = None) -> tuple[int, Any]:
        async def call() -> tuple[int, Any]:
            headers = {"apikey": (user or self.owner).api_key}
            resp = await self.client.post(path, json=body, headers=headers)
            return resp.status, await resp.json()

        return self.loop.run_until_complete(call())


@contextmanager
def served_horde() -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    horde = LocalHorde(LocalHordeConfig(sweep_interval=0, detect_suspicion=False), clock=FakeClock())

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(horde=horde)))
        await client.start_server()
        return client

    client = loop.run_until_complete(start())
    try:
        yield Served(loop, horde, client)
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def assert_horde_error_shape(status: int, body: Any) -> None:
    """A 4xx in one of the server's two shapes: validation errors, or `{"message", "rc"}`."""
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict) and isinstance(body.get("message"), str), body
    assert set(body) in ({"errors", "message"}, {"message", "rc"}), body


# Pop bodies: each field valid, of a wrong type, out of range, or missing.
def _field(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Mostly valid, so that a good share of whole bodies are valid too.
    choices = [valid] * 6 + [invalid, st.just(MISSING)]
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


POP_BODY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": _field(st.text(min_size=1, max_size=20), JSON.filter(lambda v: not isinstance(v, str))),
    "priority_usernames": _field(st.lists(ALIAS, max_size=3), st.lists(st.text(max_size=10), min_size=1) | JSON),
    "forms": _field(st.lists(st.sampled_from(FORM_NAMES), max_size=4), st.lists(FORM_NAME, min_size=1) | JSON),
    "amount": _field(st.integers(-3, 30), JSON),
    "bridge_agent": _field(st.text(max_size=10), st.just("x" * 1001) | JSON),
    "threads": _field(st.integers(1, 100), st.integers(-3, 0) | st.integers(101, 130) | JSON),
    "max_tiles": _field(st.integers(1, 256), st.integers(-3, 0) | st.integers(257, 300) | JSON),
}


# Any JSON in any field, or a value close to a valid one, so that bodies get past the first checks.
NEAR_VALID: dict[str, st.SearchStrategy[Any]] = {
    **{name: strategy.filter(lambda v: v is not MISSING) | JSON for name, strategy in POP_BODY_FIELDS.items()},
    "forms": st.lists(FORM_NAME, max_size=3)
    | st.lists(st.fixed_dictionaries({"name": FORM_NAME}, optional={"payload": JSON}), max_size=3)
    | JSON,
    "source_image": st.just(png_b64()) | JSON,
    "slow_workers": st.booleans() | JSON,
    "id": JSON,
    "result": st.dictionaries(st.text(max_size=8), JSON, max_size=3) | JSON,
    "state": st.sampled_from(["ok", "faulted"]) | JSON,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def schema_failures(body: dict[str, Any]) -> set[str]:
    """The top-level fields `InterrogationPopInput` refuses."""
    checks: dict[str, Callable[[Any], bool]] = {
        "name": lambda v: isinstance(v, str),
        "priority_usernames": lambda v: isinstance(v, list) and all(isinstance(e, str) for e in v),
        "forms": lambda v: isinstance(v, list) and all(isinstance(e, str) and e in FORM_NAMES for e in v),
        "amount": _is_int,
        "bridge_agent": lambda v: isinstance(v, str) and len(v) <= 1000,
        "threads": lambda v: _is_int(v) and 1 <= v <= 100,
        "max_tiles": lambda v: _is_int(v) and 1 <= v <= 256,
    }
    return {name for name, ok in checks.items() if name in body and not ok(body[name])}


def expected_pop_status(body: dict[str, Any]) -> int:
    if schema_failures(body) or "name" not in body:
        return 400
    if any("#" not in entry for entry in body.get("priority_usernames", [])):
        return 400
    name = sanitize_name(body["name"])[:100].lower()
    return 400 if any(part in name for part in ("colab", "tpu", "google")) else 200


def test_pop_input_validation_matches_the_server_rules() -> None:
    with served_horde() as served:

        @SETTINGS
        @given(st.fixed_dictionaries(POP_BODY_FIELDS))
        def example(drawn: dict[str, Any]) -> None:
            body = {name: value for name, value in drawn.items() if value is not MISSING}
            status, answer = served.post("/api/v2/interrogate/pop", body)
            event(f"pop {status}")
            assert status == expected_pop_status(body), (body, answer)
            if status == 400 and schema_failures(body):
                assert {key.split(".")[0] for key in answer["errors"]} == schema_failures(body)
            if status == 200:
                assert answer == {"forms": None, "skipped": {}}
                worker = served.horde.worker(sanitize_name(body["name"])[:100])
                assert worker is not None and worker.kind == "interrogation"
            else:
                assert_horde_error_shape(status, answer)

        example()


def test_any_json_sent_to_the_alchemy_endpoints_is_never_a_500() -> None:
    with served_horde() as served:
        paths = ["/api/v2/interrogate/pop", "/api/v2/interrogate/submit", "/api/v2/interrogate/async"]

        @SETTINGS
        @given(path=st.sampled_from(paths), body=JSON | st.fixed_dictionaries({}, optional=NEAR_VALID))
        def example(path: str, body: Any) -> None:
            status, answer = served.post(path, body)
            event(f"{path.rsplit('/', 1)[-1]} {status}")
            assert status < 500, (path, body, answer)
            if status >= 400:
                assert_horde_error_shape(status, answer)

        example()


def test_submit_body_validation_and_outcomes() -> None:
    with served_horde() as served:

        @SETTINGS
        @given(
            known_id=st.booleans(),
            other_id=JSON,
            result=JSON | st.dictionaries(st.sampled_from(["caption", "nsfw", "x"]), JSON, max_size=3),
            state=st.sampled_from(["ok", "faulted", MISSING]) | JSON,
        )
        def example(known_id: bool, other_id: Any, result: Any, state: Any) -> None:
            if served.horde.worker(ALCHEMIST) is not None:  # faulted submits count as aborts: 21 an hour is maintenance
                served.horde.set_maintenance(ALCHEMIST, False)
            interrogation = queue_alchemy(served.horde, served.requester, ["caption"])
            form_id = interrogation.form_ids[0]
            popped = served.post("/api/v2/interrogate/pop", {"name": ALCHEMIST, "forms": ["caption"]})
            assert popped[0] == 200 and popped[1]["forms"][0]["id"] == form_id
            body: dict[str, Any] = {"id": form_id if known_id else other_id, "result": result}
            if state is not MISSING:
                body["state"] = state
            before = served.owner.kudos
            status, answer = served.post("/api/v2/interrogate/submit", body)
            event(f"submit {status} {answer.get('rc', '') if isinstance(answer, dict) else ''}")
            form = served.horde.state.alchemy.forms[form_id]
            assert status == expected_submit_status(body, form_id), (body, answer)
            delivered = status == 200 and body.get("state") != "faulted"
            if status != 200:
                assert form.state is FormState.PROCESSING
            else:
                assert form.state is (FormState.DONE if delivered else FormState.WAITING)
            assert served.owner.kudos == before + (1 if delivered else 0)
            if status != 200:
                assert_horde_error_shape(status, answer)
            served.horde.state.alchemy.delete(interrogation)

        example()


def expected_submit_status(body: dict[str, Any], form_id: str) -> int:
    if body.get("id") is None or body.get("result") is None:
        return 400
    try:
        result = dict(body["result"])
    except (TypeError, ValueError):
        return 400
    if body["id"] != form_id:
        return 404
    if "R2" in result.values() and body.get("state") != "faulted":
        return 400  # nothing was uploaded for it
    return 200
