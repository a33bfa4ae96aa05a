"""The ASGI lifespan protocol, run by the launcher for a server that does not run it (Daphne).

The app's lifespan starts the chat bus, which /ws/chat needs. `startup()` sends
`lifespan.startup` and waits for the app's answer; `shutdown()` sends `lifespan.shutdown` and
waits for the app to finish. An app that fails either, or returns early, raises LifespanError.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message

LIFESPAN_SCOPE: dict[str, Any] = {
    "type": "lifespan",
    "asgi": {"version": "3.0", "spec_version": "2.0"},
}


class LifespanError(RuntimeError):
    pass


class Lifespan:
    """One run of an app's lifespan: startup, then (later) shutdown, on the running loop."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.create_task(
            self._app(dict(LIFESPAN_SCOPE), self._to_app.get, self._from_app.put)
        )
        await self._to_app.put({"type": "lifespan.startup"})
        await self._expect("lifespan.startup")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._expect("lifespan.shutdown")
        await self._task

    async def _expect(self, step: str) -> None:
        """Wait for `<step>.complete`; raise on `<step>.failed` or when the app ends first."""
        assert self._task is not None
        answer = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({answer, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            error = self._task.exception()
            raise LifespanError(f"the app ended during {step}: {error!r}") from error
        message = answer.result()
        if message["type"] != f"{step}.complete":
            raise LifespanError(f"{message['type']}: {message.get('message', '')}")
