"""Long polling through nginx on the running native stack: a poll on one service hears what is
posted on the other and what a chat socket says, and a waiting poll holds a Gunicorn worker.

A message is published only once the poll waits (Flask's wait is a Redis subscription, counted
by PUBSUB NUMSUB): pub/sub keeps no history, so earlier would be lost by design.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import websockets
from redis import Redis

from gateway_common.chat_bus import CHANNEL_PREFIX
from gateway_common.variants import Variant
from tests.conftest import TEST_VARIANTS, StackHandle

pytestmark = pytest.mark.integration

# Bounds against hanging on a shared machine, never speed requirements.
READY_TIMEOUT_S = 15.0
LONG_WAIT_MS = 25_000


def new_room() -> str:
    return "it" + uuid.uuid4().hex[:12]


def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def gauge(metrics_text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_wsgi_poll(
    stack: StackHandle, pool: concurrent.futures.Executor, room: str
) -> concurrent.futures.Future[httpx.Response]:
    """A `GET /wsgi/poll` through nginx, returned once its worker is subscribed to the room."""
    url = f"{stack.public_url}/wsgi/poll"
    poll = pool.submit(
        httpx.get, url, params={"room": room, "timeout_ms": LONG_WAIT_MS}, timeout=60
    )
    with Redis.from_url(stack.settings.redis_url) as redis:
        eventually(
            lambda: redis.pubsub_numsub(CHANNEL_PREFIX + room)[0][1] == 1 or poll.done(),
            "the poll's worker subscribed",
        )
    return poll


def test_a_wsgi_poll_hears_a_message_posted_on_asgi(stack: StackHandle) -> None:
    room = new_room()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = start_wsgi_poll(stack, pool, room)
        # The teaching point: the waiting poll holds one of Gunicorn's sync workers.
        metrics = httpx.get(stack.wsgi_metrics_url, timeout=10).text
        assert gauge(metrics, "http_requests_in_progress", service="flask", route="/poll") == 1
        posted = httpx.post(
            f"{stack.public_url}/asgi/poll", params={"room": room}, json={"text": "over there"}
        )
        got = poll.result(timeout=READY_TIMEOUT_S)
    assert posted.status_code == 202, posted.text
    assert got.status_code == 200, got.text
    assert got.content == posted.content
    document = got.json()
    assert (document["type"], document["room"], document["text"]) == ("message", room, "over there")


def test_a_wsgi_poll_hears_a_chat_socket(stack: StackHandle) -> None:
    room = new_room()

    async def chat(poll_started: Callable[[], concurrent.futures.Future]) -> tuple[dict, dict]:
        async with websockets.connect(f"{stack.ws_url}/asgi/ws/chat?room={room}") as socket:
            joined = json.loads(await asyncio.wait_for(socket.recv(), READY_TIMEOUT_S))
            assert joined["type"] == "joined"
            poll = await asyncio.to_thread(poll_started)
            await socket.send("hello pollers")
            broadcast = json.loads(await asyncio.wait_for(socket.recv(), READY_TIMEOUT_S))
            got = await asyncio.to_thread(poll.result, READY_TIMEOUT_S)
            assert got.status_code == 200, got.text
            assert broadcast["from"] == joined["id"]
            return broadcast, got.json()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        broadcast, polled = asyncio.run(chat(lambda: start_wsgi_poll(stack, pool, room)))
    assert polled == broadcast
    assert polled["text"] == "hello pollers"


def test_a_wsgi_post_reaches_a_chat_socket_and_an_asgi_poll(stack: StackHandle) -> None:
    room = new_room()

    async def scenario() -> tuple[dict, httpx.Response, list[httpx.Response]]:
        async with (
            websockets.connect(f"{stack.ws_url}/asgi/ws/chat?room={room}") as socket,
            httpx.AsyncClient(base_url=stack.public_url, timeout=60) as client,
        ):
            await asyncio.wait_for(socket.recv(), READY_TIMEOUT_S)  # joined
            poll = asyncio.create_task(
                client.get("/asgi/poll", params={"room": room, "timeout_ms": LONG_WAIT_MS})
            )
            # The socket is a member from `joined` on; the poll joins its bus as soon as it
            # runs, so its post is repeated until the poll has answered (bounded).
            posted = []
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not poll.done() and time.monotonic() < deadline:
                posted.append(
                    await client.post("/wsgi/poll", params={"room": room}, json={"text": "hi"})
                )
                await asyncio.wait({poll}, timeout=0.2)
            first = json.loads(await asyncio.wait_for(socket.recv(), READY_TIMEOUT_S))
            return first, await poll, posted

    first, polled, posted = asyncio.run(scenario())
    assert all(p.status_code == 202 for p in posted), [p.text for p in posted]
    assert first == posted[0].json()
    assert polled.status_code == 200, polled.text
    assert polled.content in {p.content for p in posted}


def test_a_poll_times_out_with_204_through_nginx(stack: StackHandle) -> None:
    for prefix in ("wsgi", "asgi"):
        answer = httpx.get(
            f"{stack.public_url}/{prefix}/poll", params={"room": new_room(), "timeout_ms": 100}
        )
        assert answer.status_code == 204, (prefix, answer.text)
        assert answer.content == b""
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Request-ID"]


async def _poll_hears_posts(stack: StackHandle, poll_prefix: str, post_prefix: str) -> None:
    """A poll under `poll_prefix` answers 200 with one of the messages posted under
    `post_prefix`; the post is repeated until the poll has answered (it waits from some moment
    after its request was sent, which the test does not see), within a bound."""
    room = new_room()
    async with httpx.AsyncClient(base_url=stack.public_url, timeout=60) as client:
        poll = asyncio.create_task(
            client.get(f"{poll_prefix}/poll", params={"room": room, "timeout_ms": LONG_WAIT_MS})
        )
        posted = []
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not poll.done() and time.monotonic() < deadline:
            answer = await client.post(
                f"{post_prefix}/poll", params={"room": room}, json={"text": "to every variant"}
            )
            assert answer.status_code == 202, answer.text
            posted.append(answer.content)
            await asyncio.wait({poll}, timeout=0.2)
        polled = await poll
    assert polled.status_code == 200, (poll_prefix, polled.text)
    assert polled.content in posted


# The frameworks that serve /poll so far; others add it through gateway_common.long_poll, and
# their name here.
POLL_FRAMEWORKS = {"flask", "fastapi", "tornado", "django"}


@pytest.mark.parametrize(
    "variant", [v for v in TEST_VARIANTS if v.framework in POLL_FRAMEWORKS], ids=lambda v: v.name
)
def test_every_variant_polls_and_publishes_in_the_shared_rooms(
    stack: StackHandle, variant: Variant
) -> None:
    asyncio.run(_poll_hears_posts(stack, variant.prefix, "/asgi"))
    asyncio.run(_poll_hears_posts(stack, "/wsgi", variant.prefix))
