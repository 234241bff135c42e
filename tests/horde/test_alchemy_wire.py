"""The alchemist's own wire models: the pop body, the pop answer read form by form, the submit body."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from horde_worker_regen.horde.alchemy_wire import (
    FormSubmitBody,
    InterrogatePopRequest,
    MalformedAlchemyPop,
    PoppedForm,
    RefusedForm,
    max_tiles_for,
    parse_interrogate_pop,
)

ASKED = ("caption", "nsfw", "RealESRGAN_x4plus", "strip_background")
R2 = "https://r2.example/upload/abc.webp?X-Amz-Signature=1"


def _form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"id": "f-1", "form": "caption", "source_image": "https://r2.example/source/f-1.png"}
    form.update(overrides)
    return form


def test_the_pop_body_sets_every_field_the_server_reads() -> None:
    request = InterrogatePopRequest(
        name="Alchemist", priority_usernames=["db0#1"], forms=["caption"], amount=2,
        bridge_agent="AI Horde Worker reGen:13:https://x", threads=1, max_tiles=16,
    )  # fmt: skip
    assert request.body() == {
        "name": "Alchemist", "priority_usernames": ["db0#1"], "forms": ["caption"], "amount": 2,
        "bridge_agent": "AI Horde Worker reGen:13:https://x", "threads": 1, "max_tiles": 16,
    }  # fmt: skip


@pytest.mark.parametrize("field", [{"forms": []}, {"amount": 0}, {"threads": 101}, {"max_tiles": 257}])
def test_a_pop_body_outside_the_server_s_ranges_is_never_built(field: dict[str, Any]) -> None:
    body = {"name": "a", "forms": ["nsfw"], "amount": 1, "bridge_agent": "x", "threads": 1, "max_tiles": 1} | field
    with pytest.raises(ValidationError):
        InterrogatePopRequest.model_validate(body)


@pytest.mark.parametrize(("max_power", "tiles"), [(1, 1), (8, 8), (256, 256), (512, 256)])
def test_max_tiles_follow_max_power_within_the_server_s_range(max_power: int, tiles: int) -> None:
    assert max_tiles_for(max_power) == tiles


def test_an_answer_without_work_is_no_form() -> None:
    answer = parse_interrogate_pop({"forms": None, "skipped": {"untrusted": 2, "odd": "x"}}, ASKED)
    assert (answer.forms, answer.refused, answer.skipped) == ((), (), {"untrusted": 2})


def test_a_form_and_its_payload_are_read_as_the_horde_sends_them() -> None:
    raw = {"forms": [_form(payload={"num_beams": "3"}), _form(id="f-2", form="RealESRGAN_x4plus", r2_upload=R2)]}
    answer = parse_interrogate_pop(raw, ASKED)
    assert [(form.id, form.form, form.options, form.r2_upload) for form in answer.forms] == [
        ("f-1", "caption", {"num_beams": "3"}, None),
        ("f-2", "RealESRGAN_x4plus", {}, R2),
    ]


@pytest.mark.parametrize(
    ("entry", "readable_id"),
    [
        (_form(form="vectorize"), True),  # a form this pop did not ask for
        (_form(form="RealESRGAN_x4plus"), True),  # a post-processor without r2_upload
        (_form(payload={"num_beams": 3}), True),  # a payload value that is not a string
        (_form(source_image=""), True),
        (_form(r2_upload="ftp://r2.example/x"), True),
        (_form(id=17), False),
        (_form(id="a\nb"), False),
        ("not an object", False),
    ],
)
def test_a_form_outside_the_contract_is_refused_alone(entry: Any, readable_id: bool) -> None:
    answer = parse_interrogate_pop({"forms": [entry, _form(id="good")]}, ASKED)
    assert [form.id for form in answer.forms] == ["good"]
    [refused] = answer.refused
    assert bool(refused.form_id) == readable_id and refused.reason.startswith("forms[0]")


def test_a_repeated_id_is_taken_once() -> None:
    answer = parse_interrogate_pop({"forms": [_form(), _form()]}, ASKED)
    assert [form.id for form in answer.forms] == ["f-1"] and not answer.refused[0].form_id


@pytest.mark.parametrize("raw", [[], "text", None, 3, {"forms": {"id": "x"}}, {"forms": "x"}])
def test_an_answer_whose_envelope_cannot_be_read_is_malformed(raw: Any) -> None:
    with pytest.raises(MalformedAlchemyPop):
        parse_interrogate_pop(raw, ASKED)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "id": _JSON | st.text(max_size=70),
        "form": _JSON | st.sampled_from([*ASKED, "vectorize"]),
        "payload": _JSON | st.dictionaries(st.text(max_size=8), st.text(max_size=8) | _JSON, max_size=4),
        "source_image": _JSON | st.just("https://r2.example/s.png"),
        "r2_upload": _JSON | st.just(R2),
    },
)


@given(st.lists(_FIELDS | _JSON, max_size=6), _JSON)
def test_any_answer_is_read_or_refused_form_by_form_and_nothing_else_escapes(entries: list[Any], skipped: Any) -> None:
    answer = parse_interrogate_pop({"forms": [*entries, _form(id="sure")], "skipped": skipped}, ASKED)
    assert any(form.id == "sure" for form in answer.forms)
    assert len(answer.forms) + len(answer.refused) == len(entries) + 1
    for form in answer.forms:
        assert isinstance(form, PoppedForm) and form.form in ASKED
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in form.options.items())
    for refused in answer.refused:
        assert isinstance(refused, RefusedForm) and refused.reason


def test_the_submit_body_carries_an_object_result() -> None:
    assert FormSubmitBody(id="f-1", result={"RealESRGAN_x4plus": "R2"}, state="ok").body() == {
        "id": "f-1", "result": {"RealESRGAN_x4plus": "R2"}, "state": "ok",
    }  # fmt: skip
    assert FormSubmitBody.faulted("f-2").body() == {"id": "f-2", "result": {}, "state": "faulted"}
    with pytest.raises(ValidationError):
        FormSubmitBody.model_validate({"id": "f", "result": "a caption", "state": "ok"})
