"""Fault injection, switchable at run time per endpoint.

A rule names an endpoint (`pop`, `submit`, `upload`, `source`, ... or `*`) and a kind:

- `error`: answer with `status` (default 500) *before* the request is applied.
- `latency`: wait `latency_s` seconds, then serve normally.
- `drop`: apply the request, then close the connection without a response (the "lost response").
- `rate_limit`: answer 429 `{"message": "60 per 1 second"}` with `Retry-After` (a burst: use `times`).
- `expired_url`: the upload/download/source URL answers 403 as if its signature had expired.
- `empty_model`: the next job popped carries `"model": ""` (the server's race).
- `maintenance`: the popping worker (image pop or alchemist pop) is put into maintenance, as a
  moderator would.
- `wrong_credentials`: answer 403 `{"message": ..., "rc": "WrongCredentials"}` *before* the request
  is applied, as the horde does for a worker name (pop) or job (submit) of another user.
- `down`: the horde is down: the connection is cut before any answer and the request is not applied
  (the client sees a disconnect, as for a crashed or restarting server). Remove the rule to bring it back.
- `mangle`: the next pop answer that carries a job (the job is handed out as usual) has one field
  changed: `path` names it (`["payload", "sampler_name"]`, `["extra_source_images", 0, "image"]`;
  for `interrogate_pop`, `["forms", 0, "source_image"]`),
  and it is set to `value` (any JSON), or deleted with `remove: true`. A path that does not lead
  into the answer leaves it as it is. For answers no sound horde would send, to test the worker.

`times` limits how often a rule fires (None: until removed); `skip` lets that many matching
requests through first. Rules are managed from Python (`FaultInjector`) or `POST /_admin/faults`.
Every answer a `drop` withheld is kept in `FaultInjector.lost_responses`, so a test can tell which
jobs the horde handed out in a pop response the worker never received.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from loguru import logger
from pydantic import BaseModel, Field

from horde_worker_regen.localhorde.errors import WRONG_CREDENTIALS_MESSAGE

FaultKind = Literal[
    "error",
    "latency",
    "drop",
    "rate_limit",
    "expired_url",
    "empty_model",
    "maintenance",
    "wrong_credentials",
    "down",
    "mangle",
]

ENDPOINTS = (
    "pop", "submit", "async", "check", "status", "find_user", "worker", "worker_modify", "worker_by_name",
    "heartbeat", "status_models", "stats_models", "modes", "upload", "download", "source",
    "interrogate_pop", "interrogate_submit", "interrogate_async", "interrogate_status",
)  # fmt: skip

RATE_LIMIT_MESSAGE = "60 per 1 second"
EXPIRED_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


class FaultRule(BaseModel):
    """One switch; see the module docstring for the kinds."""

    endpoint: str = Field(description="An endpoint name from ENDPOINTS, or '*' for all of them.")
    kind: FaultKind
    status: int = Field(default=500, ge=400, le=599)
    latency_s: float = Field(default=0.0, ge=0)
    times: int | None = Field(default=None, ge=1)
    skip: int = Field(default=0, ge=0)
    retry_after: int = Field(default=1, ge=0)
    message: str | None = None
    path: list[str | int] = Field(default_factory=list, description="`mangle`: the field changed.")
    value: Any = Field(default=None, description="`mangle`: its new value (any JSON).")
    remove: bool = Field(default=False, description="`mangle`: delete the field instead.")
    id: int = 0
    fired: int = 0

    def matches(self, endpoint: str, kind: str) -> bool:
        """True if this rule applies to a request of that endpoint for that kind."""
        return self.kind == kind and self.endpoint in ("*", endpoint)


@dataclass(frozen=True)
class LostResponse:
    """An answer the server produced (the request was applied) and a `drop` kept from the client."""

    endpoint: str
    status: int
    body: bytes
    request: bytes = b""  # the request's body, e.g. to tell which job a lost submit answer was for


class FaultInjector:
    """The set of active fault rules."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.lost_responses: list[LostResponse] = []

    def add(self, rule: FaultRule | dict[str, Any] | None = None, **fields: Any) -> FaultRule:
        """Activate a rule (a `FaultRule`, its dict, or keyword fields); returns it with its id."""
        data = rule.model_dump() if isinstance(rule, FaultRule) else dict(rule or {})
        data.update(fields)
        data.pop("id", None)
        data.pop("fired", None)
        new_rule = FaultRule.model_validate(data)
        if new_rule.endpoint != "*" and new_rule.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {new_rule.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        new_rule.id = next(self._ids)
        self._rules.append(new_rule)
        logger.info(f"local horde fault on: #{new_rule.id} {new_rule.kind} at {new_rule.endpoint}")
        return new_rule

    def remove(self, rule_id: int) -> bool:
        """Deactivate one rule."""
        before = len(self._rules)
        self._rules = [rule for rule in self._rules if rule.id != rule_id]
        return len(self._rules) != before

    def clear(self, endpoint: str | None = None) -> None:
        """Deactivate all rules, or those of one endpoint."""
        self._rules = [rule for rule in self._rules if endpoint is not None and rule.endpoint != endpoint]

    def rules(self) -> list[FaultRule]:
        """The active rules."""
        return list(self._rules)

    def take(self, endpoint: str, kind: str) -> FaultRule | None:
        """Fire the first matching rule, if any (consuming `skip`, then `times`)."""
        for rule in self._rules:
            if not rule.matches(endpoint, kind):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            rule.fired += 1
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.remove(rule)
            logger.debug(f"local horde fault fired: #{rule.id} {kind} at {endpoint}")
            return rule
        return None


def mangle(answer: dict[str, Any], rule: FaultRule) -> bool:
    """Apply a `mangle` rule to a pop answer; False if its path does not lead into the answer."""
    if not rule.path:
        return False
    container: Any = answer
    for step in rule.path[:-1]:
        if not _has(container, step):
            return False
        container = container[step]
    last = rule.path[-1]
    if rule.remove:
        if not _has(container, last):
            return False
        del container[last]
    elif (isinstance(container, dict) and isinstance(last, str)) or _has(container, last):
        container[last] = copy.deepcopy(rule.value)  # a new field of an object, or an existing item
    else:
        return False
    return True


def _has(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return isinstance(step, str) and step in container
    return isinstance(container, list) and isinstance(step, int) and -len(container) <= step < len(container)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EndpointOf = Callable[[web.Request], str | None]


def _error_response(rule: FaultRule) -> web.Response:
    if rule.message is not None:
        message = rule.message
    elif rule.status == 500:
        message = "Internal Server Error"
    else:
        message = web.Response(status=rule.status).reason
    return web.json_response({"message": message}, status=rule.status)


def rate_limit_response(rule: FaultRule, now: float) -> web.Response:
    """429 in flask-limiter's shape."""
    headers = {
        "Retry-After": str(rule.retry_after),
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(now) + max(rule.retry_after, 1)),
    }
    return web.json_response({"message": rule.message or RATE_LIMIT_MESSAGE}, status=429, headers=headers)


def expired_response() -> web.Response:
    """What an R2 presigned URL answers after it expired."""
    return web.Response(status=403, text=EXPIRED_XML, content_type="application/xml")


def _refusal(faults: FaultInjector, endpoint: str, request: web.Request, now: float) -> web.Response | None:
    """The answer of a rule that refuses the request before it is applied, if one fires."""
    if faults.take(endpoint, "down"):
        if request.transport is not None:
            request.transport.abort()  # no answer at all: the client sees the server disconnect
        return web.Response(status=503)
    if rule := faults.take(endpoint, "rate_limit"):
        return rate_limit_response(rule, now)
    if rule := faults.take(endpoint, "error"):
        return _error_response(rule)
    if rule := faults.take(endpoint, "wrong_credentials"):
        body = {"message": rule.message or WRONG_CREDENTIALS_MESSAGE, "rc": "WrongCredentials"}
        return web.json_response(body, status=403)
    return None


def make_fault_middleware(faults: FaultInjector, endpoint_of: EndpointOf, now: Callable[[], float]) -> Any:
    """Build the middleware that applies the rules to every named endpoint."""

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = endpoint_of(request)
        if endpoint is None:
            return await handler(request)
        refusal = _refusal(faults, endpoint, request, now())
        if refusal is not None:
            return refusal
        if rule := faults.take(endpoint, "latency"):
            await asyncio.sleep(rule.latency_s)
        if endpoint in ("upload", "download", "source") and faults.take(endpoint, "expired_url"):
            return expired_response()
        response = await handler(request)
        if faults.take(endpoint, "drop"):
            # The request has been applied; close the socket so the client never sees the answer.
            logger.info(f"local horde: dropping the connection after {request.method} {request.path}")
            raw = response.body if isinstance(response, web.Response) else None
            withheld = raw if isinstance(raw, bytes) else b""
            faults.lost_responses.append(LostResponse(endpoint, response.status, withheld, await request.read()))
            if request.protocol is not None:
                request.protocol.force_close()
        return response

    return fault_middleware
