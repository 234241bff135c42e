"""Alchemy request bodies: the flask-restx models as JSON schemas, then the reqparse step.

`InterrogationPopInput` and `ModelInterrogationInputStable` are validated as schemas (every form
name must be in the enum: one unknown name fails the whole body); `/v2/interrogate/submit` has no
model, only its reqparse parser, whose `type=dict` conversion of `result` is reproduced here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from horde_worker_regen.localhorde.alchemy_forms import DEFAULT_MAX_TILES, FORM_NAMES, MAX_POP_TILES
from horde_worker_regen.localhorde.errors import ValidationFailed
from horde_worker_regen.localhorde.validation import require_argument

_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_FORM_NAME: dict[str, Any] = {"type": "string", "enum": list(FORM_NAMES)}

INTERROGATE_POP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STR,
        "priority_usernames": {"type": "array", "items": _STR},
        "forms": {"type": "array", "items": _FORM_NAME},
        "amount": {"type": "integer"},
        "bridge_agent": {"type": "string", "maxLength": 1000},
        "threads": {"type": "integer", "minimum": 1, "maximum": 100},
        "max_tiles": {"type": "integer", "minimum": 1, "maximum": MAX_POP_TILES},
    },
}

INTERROGATE_ASYNC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "forms": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                # The payload model is a wildcard of strings: any object passes, its values are
                # turned into strings when a worker pops the form.
                "properties": {"name": _FORM_NAME, "payload": {"type": "object"}},
            },
        },
        "source_image": _STR,
        "trusted_workers": _BOOL,
        "slow_workers": _BOOL,
        "webhook": _STR,
    },
}

SUBMIT_ID_HELP = "The processing generation uuid"
SUBMIT_RESULT_HELP = "The completed interrogation form results"


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Any:
        """Build from a schema-validated body; omitted fields take the parser default."""
        return cls.model_validate({k: v for k, v in body.items() if v is not None})


class InterrogatePopArgs(_Args):
    """`POST /v2/interrogate/pop` after reqparse, with the parser's defaults."""

    name: str
    priority_usernames: list[str] = Field(default_factory=list)
    forms: list[str] = Field(default_factory=list)
    amount: int = 1
    bridge_agent: str = "unknown:0:unknown"
    threads: int = 1
    max_tiles: int = DEFAULT_MAX_TILES


class InterrogateArgs(_Args):
    """`POST /v2/interrogate/async` after reqparse."""

    forms: list[dict[str, Any]] = Field(default_factory=list)
    source_image: str
    trusted_workers: bool = False
    slow_workers: bool = True
    webhook: str | None = None


@dataclass(frozen=True)
class InterrogateSubmitArgs:
    """`POST /v2/interrogate/submit` after reqparse. `result` is whatever `dict(...)` made of the value,
    so its keys need not be strings (a list of pairs converts too)."""

    id: str
    result: dict[Any, Any]
    state: str = "ok"  # anything but "faulted" is delivered as a success, as on the server


def parse_submit_body(body: dict[str, Any]) -> InterrogateSubmitArgs:
    """reqparse on the submit body: `id` and `result` required (null counts as missing), `id` and
    `state` turned into strings, `result` through `dict(...)`, whose error is the field's message."""
    require_argument(body.get("id") is not None, "id", "json", SUBMIT_ID_HELP)
    require_argument(body.get("result") is not None, "result", "json", SUBMIT_RESULT_HELP)
    raw_id, raw_result, raw_state = body["id"], body["result"], body.get("state")
    try:
        result = dict(raw_result)
    except (TypeError, ValueError) as error:
        raise ValidationFailed({"result": f"{SUBMIT_RESULT_HELP} {error}"}) from error
    return InterrogateSubmitArgs(
        id=raw_id if isinstance(raw_id, str) else str(raw_id),
        result=result,
        state="ok" if raw_state is None else str(raw_state),
    )
