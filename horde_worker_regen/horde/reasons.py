"""Why a request got no answer, in plain words for the operator (never an exception's repr)."""

from __future__ import annotations

import asyncio
import errno
import re
import ssl

import aiohttp

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
}


def _os_reason(error: OSError) -> str | None:
    if error.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[error.errno]
    strerror = error.strerror or ""
    if "Name or service not known" in strerror or "nodename nor servname" in strerror or "getaddrinfo" in strerror:
        return "the host name could not be resolved"
    return strerror.lower() or None


# Checked in order: the first class the error is an instance of gives the words.
_FIXED_WORDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((asyncio.TimeoutError, TimeoutError, aiohttp.ServerTimeoutError), "no answer in time"),
    (aiohttp.ClientConnectorDNSError, "the host name could not be resolved"),
    (
        (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError),
        "the TLS connection failed (certificate or proxy problem)",
    ),
    (
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError),
        "the server closed the connection before answering",
    ),
)


def plain_reason(error: BaseException) -> str:
    """A few words on why a request failed: "connection refused", "no answer in time", ..."""
    for kinds, words in _FIXED_WORDS:
        if isinstance(error, kinds):
            return words
    if isinstance(error, aiohttp.ClientConnectorError):
        return _os_reason(error.os_error) or "the connection could not be made"
    if isinstance(error, OSError):
        return _os_reason(error) or "a network error"
    return "a network error"


# A URL in a reason: scheme, host, then anything up to a blank, a quote or a bracket (a final stop or comma
# is the sentence's).
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s?#'\"<>()\[\]]*)(?:[^\s'\"<>()\[\]]*[^\s'\"<>()\[\].,;:])?")


def without_urls(text: str) -> str:
    """`text` with every URL cut to its scheme and host (`https://host/...`): a presigned URL's path and
    query are a credential, and a requester's own URL is theirs; pages and metrics show reasons this way."""
    return _URL.sub(lambda match: f"{match.group(1)}{match.group(2).rpartition('@')[2]}/...", text)
