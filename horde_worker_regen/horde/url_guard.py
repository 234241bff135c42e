"""Which URLs the worker may fetch a job's input images from.

Only `http` and `https`. Unless the operator set `allow_private_source_urls: true`, every hop of a
download, redirects included, must also resolve only to public addresses: loopback, private,
link-local, multicast, reserved and unspecified ones are refused, so a job cannot make the worker
reach into its own machine or network. The configured `horde_url`'s own origin (scheme, host, port)
stays allowed whatever it resolves to: a local or self-hosted horde, and the presigned input URLs it
hands out, live there by design. `allow_unsafe_ip` plays no part here: it only tells the horde whether
this worker serves requesters on VPNs or flagged IPs (`allow_unsafe_ipaddr` in the pop). A name is
resolved for the check and again by the HTTP client when it connects, so a DNS answer that changes in
between is not caught here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from yarl import URL

ALLOWED_SCHEMES = ("http", "https")
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UnsafeUrl(ValueError):
    """A URL the worker will not fetch; retrying will not help."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


@dataclass
class UrlGuard:
    """Checks each URL (each redirect hop) before it is fetched."""

    allow_private: bool = False  # refusing is the safe default; only the operator's setting opens it
    trusted_origins: frozenset[tuple[str, str, int | None]] = frozenset()
    resolver: Resolver = field(default=resolve)

    @classmethod
    def for_horde(cls, horde_url: str, allow_private: bool) -> UrlGuard:
        """The guard of a worker serving the horde at `horde_url` (`allow_private`: the operator's
        `allow_private_source_urls`)."""
        return cls(allow_private, frozenset({_origin(URL(horde_url))}))

    async def check(self, url: URL) -> None:
        """Raise `UnsafeUrl` if `url` must not be fetched."""
        if url.scheme not in ALLOWED_SCHEMES or not url.host:
            raise UnsafeUrl(f"the URL scheme {url.scheme!r} is not allowed (only http and https)")
        if self.allow_private or _origin(url) in self.trusted_origins:
            return
        try:
            addresses = await self.resolver(url.host, url.port or 443)
        except OSError as error:
            raise UnsafeUrl(f"{url.host} does not resolve ({error})") from None
        private = [address for address in addresses if not _is_public(address)]
        if private or not addresses:
            raise UnsafeUrl(
                f"{url.host} resolves to a non-public address ({', '.join(private) or 'none'}) "
                "and allow_private_source_urls is off"
            )
