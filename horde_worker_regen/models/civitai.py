"""Where CivitAI is: its API base (overridable for tests and mirrors) and which hosts take the token."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

DEFAULT_CIVITAI_API_URL = "https://civitai.com/api/v1"
CIVITAI_API_URL_ENV = "HORDE_CIVITAI_API_URL"


def civitai_api_url() -> str:
    """The CivitAI API base URL, without a trailing slash."""
    return os.environ.get(CIVITAI_API_URL_ENV, DEFAULT_CIVITAI_API_URL).rstrip("/")


def token_hosts() -> tuple[str, ...]:
    """Hosts besides civitai.com that get the CivitAI token: the configured API's, when overridden."""
    host = urlsplit(civitai_api_url()).hostname
    return (host,) if host and CIVITAI_API_URL_ENV in os.environ else ()
