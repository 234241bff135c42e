"""Who may use the dashboard: the token rule, and a guard against cross-site form posts.

With `dashboard_token` set, every request but `/healthz` must carry it: as `Authorization: Bearer
<token>`, or once as `?token=<token>`, which sets an HttpOnly cookie and redirects to the same page
without the token in its address (so it does not linger in history or screenshots). Comparisons
are constant-time. Without a token (allowed only on loopback) anyone on this machine may use it, but
only under a loopback name in `Host`: a web page whose own name was re-pointed at 127.0.0.1 (DNS
rebinding) sends its own name there, and is refused.
Pause and resume are POSTs; a POST whose `Origin` is another site is refused, so a web page open in
the owner's browser cannot pause the worker behind their back.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

COOKIE = "horde_worker_dashboard"
OPEN_PATHS = frozenset({"/healthz"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _matches(offered: str | None, token: str) -> bool:
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cross_site(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin == "null"
    return URL(origin).authority != request.host


def _loopback_host(request: web.Request) -> bool:
    try:
        name = URL.build(authority=request.host).host
    except ValueError:
        return False
    return name is not None and name.lower() in LOOPBACK_NAMES


def token_middleware(token: str | None) -> Middleware:
    """The aiohttp middleware enforcing the rules above (`token`: None when none is configured)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and _cross_site(request):
            raise web.HTTPForbidden(text="cross-site requests are refused")
        if request.path in OPEN_PATHS:
            return await handler(request)
        if token is None:
            if not _loopback_host(request):
                raise web.HTTPForbidden(
                    text="without a dashboard_token the dashboard answers only to localhost, 127.0.0.1 or [::1] "
                    "(this request named another host, as a DNS-rebinding web page would); "
                    "open it by one of those names, or set dashboard_token"
                )
            return await handler(request)
        if _matches(request.query.get("token"), token):
            clean = request.rel_url.without_query_params("token")
            response = web.HTTPSeeOther(location=str(clean))
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            raise response
        if _matches(_bearer(request), token) or _matches(request.cookies.get(COOKIE), token):
            return await handler(request)
        raise web.HTTPUnauthorized(
            text="the dashboard needs its token: open it once as /?token=<dashboard_token>, "
            "or send 'Authorization: Bearer <dashboard_token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return check
