"""Presigned-style URLs for the local object store (standing in for Cloudflare R2).

The URLs look like S3 presigned URLs (`X-Amz-Date`, `X-Amz-Expires`, `X-Amz-Signature`), are
signed with an HMAC over method, bucket, key, date and lifetime, and stop working after their
lifetime: 1800 s from pop for uploads, 1800 s from request creation for source images.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import time
from collections.abc import Mapping
from enum import Enum
from urllib.parse import urlencode

URL_LIFETIME_S = 1800
GENERATIONS_BUCKET = "stable-horde"
SOURCES_BUCKET = "stable-horde-source-images"
BUCKET_PREFIX = "/r2"
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class UrlCheck(Enum):
    """Outcome of checking a presigned URL."""

    OK = "ok"
    EXPIRED = "expired"
    INVALID = "invalid"


def _format_date(timestamp: float) -> str:
    return time.strftime(_DATE_FORMAT, time.gmtime(timestamp))


def _parse_date(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text, _DATE_FORMAT)))
    except ValueError:
        return None


class UrlSigner:
    """Signs and verifies object URLs with a per-server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _signature(self, method: str, bucket: str, key: str, date: str, expires: int) -> str:
        message = f"{method}\n{bucket}\n{key}\n{date}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, base: str, method: str, bucket: str, key: str, *, issued: float, lifetime: int) -> str:
        """A URL valid for `lifetime` seconds from `issued` for one method on one object."""
        date = _format_date(issued)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(lifetime),
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._signature(method, bucket, key, date, lifetime),
        }
        return f"{base}{BUCKET_PREFIX}/{bucket}/{key}?{urlencode(query)}"

    def check(self, method: str, bucket: str, key: str, query: Mapping[str, str], now: float) -> UrlCheck:
        """Verify a request's query against its signature and lifetime."""
        date = query.get("X-Amz-Date", "")
        try:
            lifetime = int(query.get("X-Amz-Expires", ""))
        except ValueError:
            return UrlCheck.INVALID
        expected = self._signature(method, bucket, key, date, lifetime)
        if not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
            return UrlCheck.INVALID
        issued = _parse_date(date)
        if issued is None:
            return UrlCheck.INVALID
        return UrlCheck.EXPIRED if now > issued + lifetime else UrlCheck.OK
