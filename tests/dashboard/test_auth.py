"""Who may use the dashboard: the token rule, the cookie, cross-site posts, and the config that demands a token."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from horde_worker_regen.config.bridge_data import BridgeData
from horde_worker_regen.config.errors import ConfigError
from horde_worker_regen.config.loader import load_config
from horde_worker_regen.dashboard.app import dashboard_app
from horde_worker_regen.dashboard.auth import COOKIE
from horde_worker_regen.dashboard.server import DashboardServer, start_dashboard
from tests.dashboard.conftest import build_parts

TOKEN = "correct-horse-battery-staple"
DATA = BridgeData(api_key="k" * 22, dashboard_token=TOKEN)


async def _client(session: aiohttp.ClientSession) -> TestClient[aiohttp.web.Request, aiohttp.web.Application]:
    parts = await build_parts(session, DATA)
    return TestClient(TestServer(dashboard_app(parts.sources, TOKEN)))


@pytest.mark.parametrize("path", ["/", "/status.json", "/history.json", "/metrics", "/static/dashboard.js"])
async def test_every_page_needs_the_token_and_the_refusal_does_not_echo_it(
    session: aiohttp.ClientSession, path: str
) -> None:
    async with await _client(session) as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": TOKEN}):
            response = await client.get(path, headers=headers)
            assert response.status == 401
            assert TOKEN not in await response.text()
        assert (await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


async def test_pause_needs_the_token_too(session: aiohttp.ClientSession) -> None:
    async with await _client(session) as client:
        assert (await client.post("/pause")).status == 401
        assert (await client.post("/pause", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


async def test_the_token_in_the_address_sets_a_cookie_and_leaves_the_address(session: aiohttp.ClientSession) -> None:
    async with await _client(session) as client:
        response = await client.get(f"/?token={TOKEN}&view=1", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/?view=1"
        cookie = response.cookies[COOKIE]
        assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
        # The client's cookie jar now carries it, as a browser's would.
        assert (await client.get("/status.json")).status == 200
        assert (await client.post("/pause")).status == 200
        client.session.cookie_jar.clear()
        response = await client.get("/?token=not-the-token-at-all", allow_redirects=False)
        assert response.status == 401 and COOKIE not in response.cookies


async def test_healthz_is_open_for_the_container_healthcheck(session: aiohttp.ClientSession) -> None:
    async with await _client(session) as client:
        response = await client.get("/healthz")
        assert response.status == 200 and await response.json() == {"status": "ok"}


async def test_a_post_from_another_site_is_refused_even_without_a_token(session: aiohttp.ClientSession) -> None:
    parts = await build_parts(session, BridgeData(api_key="k" * 22))
    async with TestClient(TestServer(dashboard_app(parts.sources, None))) as client:
        response = await client.post("/pause", headers={"Origin": "https://evil.example"})
        assert response.status == 403 and not parts.popper.paused
        same_site = f"http://{client.server.host}:{client.server.port}"
        assert (await client.post("/pause", headers={"Origin": same_site})).status == 200
        assert parts.popper.paused


@pytest.mark.parametrize("host", ["evil.example:7070", "evil.example", "192.168.1.5:7070", "localhost.evil.example"])
async def test_without_a_token_another_host_name_is_refused(session: aiohttp.ClientSession, host: str) -> None:
    parts = await build_parts(session, BridgeData(api_key="k" * 22))
    async with TestClient(TestServer(dashboard_app(parts.sources, None))) as client:
        origin = f"http://{host}"  # a DNS-rebinding page is same-origin with itself
        response = await client.get("/status.json", headers={"Host": host})
        assert response.status == 403 and "dashboard_token" in await response.text()
        response = await client.post("/pause", headers={"Host": host, "Origin": origin})
        assert response.status == 403 and not parts.popper.paused
        assert (await client.get("/healthz", headers={"Host": host})).status == 200


@pytest.mark.parametrize("host", ["localhost:7070", "127.0.0.1:7070", "[::1]:7070", "LOCALHOST"])
async def test_without_a_token_loopback_names_are_served(session: aiohttp.ClientSession, host: str) -> None:
    parts = await build_parts(session, BridgeData(api_key="k" * 22))
    async with TestClient(TestServer(dashboard_app(parts.sources, None))) as client:
        assert (await client.get("/status.json", headers={"Host": host})).status == 200


def _problems(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bridgeData.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {}, {})
    return str(caught.value)


def test_an_open_host_without_a_token_is_a_config_error(tmp_path: Path, clean_env: None) -> None:
    message = _problems(tmp_path, "dashboard_host: 0.0.0.0\n")
    assert "dashboard_token" in message
    assert "a token is required because dashboard_host is '0.0.0.0', which is not loopback" in message


def test_a_short_token_is_refused_without_showing_it(tmp_path: Path, clean_env: None) -> None:
    message = _problems(tmp_path, "dashboard_token: hunter2\n")
    assert "dashboard_token: <redacted> is not valid (must be at least 16 characters" in message
    assert "hunter2" not in message


def test_dashboard_port_out_of_range_names_the_allowed_values(tmp_path: Path, clean_env: None) -> None:
    message = _problems(tmp_path, "dashboard_port: 70000\n")
    assert "dashboard_port: 70000 is not valid" in message and "a whole number from 0 to 65535" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert BridgeData(dashboard_host=host).dashboard_token is None


def test_the_token_is_a_secret_for_redaction() -> None:
    data = BridgeData(dashboard_host="0.0.0.0", dashboard_token=TOKEN)
    assert TOKEN in data.secrets()
    assert TOKEN not in repr(data)


async def test_a_taken_port_costs_only_the_dashboard(session: aiohttp.ClientSession, caplog_loguru: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = BridgeData(api_key="k" * 22, dashboard_port=port)
        assert await start_dashboard(data, (await build_parts(session, data)).sources) is None
    assert any(
        f"The dashboard cannot listen on 127.0.0.1:{port}" in line and "goes on without it" in line
        for line in caplog_loguru
    )


async def test_port_zero_listens_on_a_free_port_and_disabled_starts_nothing(session: aiohttp.ClientSession) -> None:
    data = BridgeData(api_key="k" * 22, dashboard_port=0)
    server = await start_dashboard(data, (await build_parts(session, data)).sources)
    assert isinstance(server, DashboardServer) and server.url is not None
    try:
        async with session.get(server.url + "healthz") as response:
            assert response.status == 200
    finally:
        await server.stop()
    disabled = data.model_copy(update={"dashboard_enabled": False})
    assert await start_dashboard(disabled, (await build_parts(session, disabled)).sources) is None
