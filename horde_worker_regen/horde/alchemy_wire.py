"""The alchemist's side of `/v2/interrogate/pop` and `/v2/interrogate/submit`, as this worker's own models.

horde_sdk 0.17.2's alchemy models cannot drive an alchemist (horde-v13-and-alchemy.md §3.4: its pop
request leaves out amount, bridge_agent, threads and max_tiles; its submit `result` is a string; a form
with a `payload` fails to parse), so the JSON is built and read here:

- `InterrogatePopRequest`: the pop body, every field the server reads set explicitly (§3.1);
- `parse_interrogate_pop`: the answer, read from the raw JSON. Each form is checked on its own
  (`PoppedForm`); one outside the contract is refused alone (`RefusedForm`, reported `faulted` when its
  id can be read) and the others go on. Only an answer whose envelope cannot be read at all (not an
  object, `forms` not a list) is malformed: nothing in it can be reported;
- `FormSubmitBody`: the submit body, `result` a JSON object (`{"caption": ...}`, `{"<form>": "R2"}`, or
  `{}` with `state: "faulted"`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from horde_worker_regen.horde.field_checks import UNPRINTABLE, describe
from horde_worker_regen.horde.payload_checks import MAX_ID_CHARS, MAX_SOURCE_CHARS, MAX_URL_CHARS
from horde_worker_regen.jobs.alchemy import lane_of

MAX_TILES = 256  # the pop's max_tiles range is 1..256 (§3.1)
MAX_PAYLOAD_FIELDS = 64
MAX_PAYLOAD_KEY_CHARS = 100
MAX_PAYLOAD_VALUE_CHARS = 10_000
MAX_FORMS_PER_ANSWER = 100  # far above any `amount` this worker asks for


class InterrogatePopRequest(BaseModel):
    """`POST /v2/interrogate/pop`: the alchemist's name, the forms it serves, how many it takes now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    priority_usernames: list[str] = Field(default_factory=list)
    forms: list[str] = Field(min_length=1)
    amount: int = Field(ge=1)
    bridge_agent: str = Field(max_length=1000)
    threads: int = Field(ge=1, le=100)
    max_tiles: int = Field(ge=1, le=MAX_TILES)

    def body(self) -> dict[str, Any]:
        """The JSON body (the API key travels as a header)."""
        return self.model_dump(mode="json")


def max_tiles_for(max_power: int) -> int:
    """The pop's `max_tiles` from the worker's `max_power`, as the beta worker sends it: within 1..256 (§3.5)."""
    return min(max(max_power, 1), MAX_TILES)


def _plain(value: str, what: str, limit: int) -> str:
    if not value or len(value) > limit or UNPRINTABLE.search(value):
        raise ValueError(f"{what} must be 1 to {limit} printable characters")
    return value


class PoppedForm(BaseModel):
    """One form of a pop answer, every field within the contract."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    id: str
    form: str
    payload: dict[str, str] | None = None
    source_image: str
    r2_upload: str | None = None

    @field_validator("id")
    @classmethod
    def _id_is_plain(cls, value: str) -> str:
        return _plain(value, "id", MAX_ID_CHARS)

    @field_validator("payload")
    @classmethod
    def _payload_is_bounded(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_PAYLOAD_FIELDS:
            raise ValueError(f"payload has {len(value)} fields (at most {MAX_PAYLOAD_FIELDS})")
        for key, text in value.items():
            _plain(key, "a payload key", MAX_PAYLOAD_KEY_CHARS)
            if len(text) > MAX_PAYLOAD_VALUE_CHARS:
                raise ValueError(f"payload {key!r} is longer than {MAX_PAYLOAD_VALUE_CHARS} characters")
        return value

    @field_validator("source_image")
    @classmethod
    def _source_is_bounded(cls, value: str) -> str:
        return _plain(value, "source_image", MAX_SOURCE_CHARS)

    @field_validator("r2_upload")
    @classmethod
    def _upload_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("r2_upload must be an http(s) URL")
        return None if value is None else _plain(value, "r2_upload", MAX_URL_CHARS)

    @property
    def options(self) -> dict[str, str]:
        """The requester's options (none when the horde sent no payload)."""
        return dict(self.payload or {})


@dataclass(frozen=True)
class RefusedForm:
    """A form outside the contract: `form_id` when its id can be read (it is then reported faulted), and
    its form name when that can be read (for the log); "" when not."""

    form_id: str
    reason: str
    form: str = ""


@dataclass(frozen=True)
class AlchemyPop:
    """An interrogation pop answer: the forms to run, those refused, and why others were skipped."""

    forms: tuple[PoppedForm, ...]
    refused: tuple[RefusedForm, ...] = ()
    skipped: dict[str, int] | None = None


class MalformedAlchemyPop(ValueError):
    """The answer could not be read at all: no form in it can be run or reported."""


def parse_interrogate_pop(raw: Any, asked: Collection[str]) -> AlchemyPop:
    """The answer to a pop that asked for the forms `asked`; MalformedAlchemyPop if its envelope is unreadable."""
    if not isinstance(raw, dict):
        raise MalformedAlchemyPop(f"the answer is {describe(raw)}, not an object")
    entries = raw.get("forms")
    skipped = _skipped(raw.get("skipped"))
    if entries is None:
        return AlchemyPop((), (), skipped)
    if not isinstance(entries, list):
        raise MalformedAlchemyPop(f"forms is {describe(entries)}, not a list")
    forms: list[PoppedForm] = []
    refused: list[RefusedForm] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries[:MAX_FORMS_PER_ANSWER]):
        parsed = _form(entry, index, set(asked))
        if isinstance(parsed, RefusedForm):
            refused.append(parsed)
        elif parsed.id in seen:
            refused.append(RefusedForm("", f"forms[{index}]: id {parsed.id} repeated in one answer"))
        else:
            seen.add(parsed.id)
            forms.append(parsed)
    if len(entries) > MAX_FORMS_PER_ANSWER:
        refused.append(RefusedForm("", f"{len(entries) - MAX_FORMS_PER_ANSWER} forms beyond the first 100"))
    return AlchemyPop(tuple(forms), tuple(refused), skipped)


def _form(entry: Any, index: int, asked: set[str]) -> PoppedForm | RefusedForm:
    """One form entry, or why it is refused (with its id when that much can be read)."""
    form_id, name = _readable(entry, "id", asked), _readable(entry, "form", asked)
    try:
        form = PoppedForm.model_validate(entry)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the form"
        return RefusedForm(form_id, f"forms[{index}].{where}: {first['msg']}", name)
    if form.form not in asked:
        return RefusedForm(form_id, f"forms[{index}]: form {form.form[:40]!r} was not asked for", name)
    if lane_of(form.form) == "post_processing" and form.r2_upload is None:
        return RefusedForm(form_id, f"forms[{index}]: post-processor {form.form} came without r2_upload", name)
    return form


def _readable(entry: Any, key: str, asked: set[str]) -> str:
    """The entry's id if it is one the horde could have issued (so a faulted submit can name it), or its
    form name if it is one asked for; "" otherwise."""
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str):
        return ""
    if key == "form":
        return value if value in asked else ""
    try:
        return _plain(value, "id", MAX_ID_CHARS)
    except ValueError:
        return ""


def _skipped(value: Any) -> dict[str, int] | None:
    """The diagnostics of a pop without work, read leniently (they never fault anything)."""
    if not isinstance(value, dict):
        return None
    return {str(key)[:40]: count for key, count in list(value.items())[:20] if type(count) is int}


class FormSubmitBody(BaseModel):
    """`POST /v2/interrogate/submit`: the form's id, its `result` object, `ok` or `faulted`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    result: dict[str, Any]
    state: Literal["ok", "faulted"]

    @classmethod
    def faulted(cls, form_id: str) -> FormSubmitBody:
        """The one `faulted` report of a form that could not be done (the horde re-queues it)."""
        return cls(id=form_id, result={}, state="faulted")

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return self.model_dump(mode="json")
