"""Input validation with the server's exact error messages.

The horde validates bodies twice: first against the flask-restx model (JSON schema Draft 4, via the
`jsonschema` package), then with a reqparse parser that enforces required arguments and fills
defaults. Both failures are a 400 `{"errors": {field: message}, "message": "Input payload validation
failed"}`. Clients match on these messages, so they are reproduced literally here rather than
translated from another validator's wording.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from horde_worker_regen.localhorde.errors import BadJson, ValidationFailed

Schema = Mapping[str, Any]

_FRIENDLY_LOCATION = {"json": "the JSON body", "headers": "the HTTP headers"}


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    # bool is a subclass of int in Python but never an integer or number in JSON schema.
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _is_type(value: Any, type_name: str) -> bool:
    check = _TYPE_CHECKS.get(type_name)
    return check is None or check(value)


def _check_scalar(value: Any, schema: Schema) -> Iterator[str]:
    """Yield jsonschema's messages for the non-structural keywords."""
    if "enum" in schema and value not in schema["enum"]:
        yield f"{value!r} is not one of {list(schema['enum'])!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{value!r} is less than the minimum of {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{value!r} is greater than the maximum of {schema['maximum']!r}"
        if "multipleOf" in schema and value % schema["multipleOf"]:
            yield f"{value!r} is not a multiple of {schema['multipleOf']!r}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield f"{value!r} should be non-empty" if schema["minLength"] == 1 else f"{value!r} is too short"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield f"{value!r} is too long"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"{value!r} is too short"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{value!r} is too long"
        if schema.get("uniqueItems") and len({repr(item) for item in value}) != len(value):
            yield f"{value!r} has non-unique elements"


def iter_errors(value: Any, schema: Schema, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Yield `(dotted path, message)` for every violation, as flask-restx's `format_error` keys them."""
    key = ".".join(path)
    type_name = schema.get("type")
    if type_name is not None and not _is_type(value, type_name):
        yield key, f"{value!r} is not of type {type_name!r}"
        return
    for message in _check_scalar(value, schema):
        yield key, message
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from iter_errors(item, schema["items"], (*path, str(index)))
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                yield ".".join((*path, name)), f"{name!r} is a required property"
        for name, sub_schema in schema.get("properties", {}).items():
            if name in value:
                yield from iter_errors(value[name], sub_schema, (*path, name))


def validate_schema(value: Any, schema: Schema) -> None:
    """Raise `ValidationFailed` with every schema violation."""
    errors = dict(iter_errors(value, schema))
    if errors:
        raise ValidationFailed(errors)


def require_argument(present: bool, name: str, location: str, help_text: str) -> None:
    """reqparse's required-argument check: the help text, then where the argument was missing."""
    if not present:
        where = _FRIENDLY_LOCATION.get(location, location)
        missing = f"Missing required parameter in {where}"
        raise ValidationFailed({name: f"{help_text} {missing}" if help_text else missing})


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as JSON; a body that is not an object fails the model's type check."""
    try:
        body = await request.json(loads=_strict_loads)
    except ValueError as error:
        raise BadJson() from error
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed({"": f"{body!r} is not of type 'object'"})
    return body


def _strict_loads(text: str) -> Any:
    return json.loads(text) if text.strip() else None


def contains_nul(value: Any) -> bool:
    """True if any string anywhere in the value contains a NUL byte."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, Sequence):
        return any(contains_nul(item) for item in value)
    return False
