"""Errors in the exact shapes the horde returns them (horde-api.md §1, "Error body").

- `HordeError` → `{"message": ..., "rc": ...}` with the status of the server's exception class.
- `ValidationFailed` → 400 `{"errors": {...}, "message": "Input payload validation failed"}`, no rc.
- Anything unexpected → 500 `{"message": "Internal Server Error"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger

VALIDATION_MESSAGE = "Input payload validation failed"
INTERNAL_ERROR_MESSAGE = "Internal Server Error"
BAD_JSON_MESSAGE = "The browser (or proxy) sent a request that this server could not understand."
NOT_FOUND_MESSAGE = (
    "The requested URL was not found on the server. If you entered the URL manually please check your spelling "
    "and try again."
)
INVALID_API_KEY_MESSAGE = (
    "No user matching sent API Key. Have you remembered to register at https://stablehorde.net/register ?"
)
ANON_FORBIDDEN_MESSAGE = "Anonymous user is forbidden from performing this operation"
NOT_OWNER_MESSAGE = "You're not an admin. Sod off!"
NOT_MODERATOR_MESSAGE = "You're not a mod. BTFO!"
WRONG_CREDENTIALS_MESSAGE = "Wrong credentials to submit as this worker."
UNRECOGNISED_MODELS_MESSAGE = "Unfortunately we cannot accept workers serving unrecognised models at this time"


class HordeError(Exception):
    """An error the horde reports as `{"message", "rc"}`."""

    def __init__(self, status: int, rc: str, message: str) -> None:
        super().__init__(f"{status} {rc}: {message}")
        self.status = status
        self.rc = rc
        self.message = message

    def response(self) -> web.Response:
        """The JSON response the server sends for this error."""
        return web.json_response({"message": self.message, "rc": self.rc}, status=self.status)


class ValidationFailed(Exception):
    """A flask-restx schema or reqparse failure."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(f"validation failed: {errors}")
        self.errors = errors

    def response(self) -> web.Response:
        """400 with the field errors and no rc."""
        return web.json_response({"errors": self.errors, "message": VALIDATION_MESSAGE}, status=400)


class BadJson(Exception):
    """The body is not JSON at all."""

    def response(self) -> web.Response:
        """400 with werkzeug's generic message."""
        return web.json_response({"message": BAD_JSON_MESSAGE}, status=400)


def invalid_api_key() -> HordeError:
    """401 `InvalidAPIKey`."""
    return HordeError(401, "InvalidAPIKey", INVALID_API_KEY_MESSAGE)


def internal_error_response() -> web.Response:
    """The body of an unhandled server error."""
    return web.json_response({"message": INTERNAL_ERROR_MESSAGE}, status=500)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the error classes above (and crashes) into the server's response shapes."""
    try:
        return await handler(request)
    except (HordeError, ValidationFailed, BadJson) as error:
        return error.response()
    except web.HTTPException as error:
        if error.status == 404 and error.content_type != "application/json":
            return web.json_response({"message": NOT_FOUND_MESSAGE}, status=404)
        if error.status == 405:
            return web.json_response({"message": "The method is not allowed for the requested URL."}, status=405)
        raise
    except Exception:
        logger.exception(f"unhandled error in {request.method} {request.path}")
        return internal_error_response()
