"""fastapi_app.lifespan: the ASGI lifespan run by a launcher whose server has none (Daphne)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI

from fastapi_app.app import create_app
from fastapi_app.lifespan import Lifespan, LifespanError
from fastapi_app.settings import load_asgi_settings


def test_runs_the_apps_lifespan_in_order() -> None:
    steps: list[str] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        steps.append("startup")
        yield
        steps.append("shutdown")

    async def scenario() -> None:
        runner = Lifespan(FastAPI(lifespan=lifespan))
        await runner.startup()
        assert steps == ["startup"]
        await runner.shutdown()

    asyncio.run(scenario())
    assert steps == ["startup", "shutdown"]


def test_a_failing_startup_is_an_error() -> None:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield  # pragma: no cover

    async def scenario() -> None:
        await Lifespan(FastAPI(lifespan=lifespan)).startup()

    with pytest.raises(LifespanError, match="(?s)lifespan.startup.failed.*no database"):
        asyncio.run(scenario())


def test_an_app_without_lifespan_support_is_an_error() -> None:
    async def http_only(scope: dict, receive: object, send: object) -> None:
        assert scope["type"] == "http"

    async def scenario() -> None:
        await Lifespan(http_only).startup()

    with pytest.raises(LifespanError, match="ended during lifespan.startup"):
        asyncio.run(scenario())


def test_the_services_lifespan_starts_and_stops_its_chat_bus(redis_url: str) -> None:
    app = create_app(load_asgi_settings(environ={"REDIS_URL": redis_url}))
    bus = app.state.chat_bus

    async def scenario() -> None:
        runner = Lifespan(app)
        await runner.startup()
        assert await bus.wait_connected(10.0)
        await runner.shutdown()
        assert not bus.connected

    asyncio.run(scenario())
