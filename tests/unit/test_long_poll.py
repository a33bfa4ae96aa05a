"""gateway_common.long_poll against a real redis-server: the sync waits (threads, and greenlets
under gevent's monkey-patching, in a process of their own), the async ones on a ChatBus, and
the answers every framework turns into its response.

Each test gets its own redis-server, so stopping it for an outage disturbs nothing else. A
publisher publishes only once the waiter is subscribed (Redis's PUBSUB NUMSUB counts it, or
the bus counts the member): pub/sub keeps no history, so earlier would be lost by design.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from gateway_common import long_poll
from gateway_common.chat_bus import CHANNEL_PREFIX, BrokerUnavailable, ChatBus, ChatMessage
from gateway_common.errors import ApiError
from gateway_common.validation import PollParams
from stackctl.settings import REPO_ROOT
from tests.redis_server import RedisServer, running_redis

# Bounds against hanging on a shared machine, never speed requirements.
READY_TIMEOUT_S = 10.0
LONG_WAIT_MS = 20_000
CONNECT_TIMEOUT_S = 10.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def subscribers(url: str, room: str) -> int:
    with Redis.from_url(url) as redis:
        return int(redis.pubsub_numsub(CHANNEL_PREFIX + room)[0][1])


def wait_in_thread(
    pool: concurrent.futures.Executor, url: str, room: str, timeout_ms: int = LONG_WAIT_MS
) -> concurrent.futures.Future[ChatMessage | None]:
    return pool.submit(long_poll.wait_sync, url, room, timeout_ms)


# --------------------------------------------------------------------------- sync


def test_a_sync_wait_gets_the_next_message_of_its_room(broker: RedisServer) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = wait_in_thread(pool, broker.url, "lobby")
        eventually(lambda: subscribers(broker.url, "lobby") == 1, "the wait subscribed")
        long_poll.publish_sync(broker.url, "elsewhere", "not for the lobby")
        published = long_poll.publish_sync(broker.url, "lobby", "hello")
        received = waiting.result(timeout=READY_TIMEOUT_S)
    assert received == published
    assert (received.room, received.text, len(received.sender)) == ("lobby", "hello", 12)
    # The wait unsubscribed when it ended.
    eventually(lambda: subscribers(broker.url, "lobby") == 0, "the wait unsubscribed")


def test_a_sync_wait_times_out_with_none(broker: RedisServer) -> None:
    assert long_poll.wait_sync(broker.url, "quiet", 0) is None
    assert long_poll.wait_sync(broker.url, "quiet", 50) is None
    eventually(lambda: subscribers(broker.url, "quiet") == 0, "the waits unsubscribed")


def test_a_sync_wait_skips_what_is_not_a_chat_message(broker: RedisServer) -> None:
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        Redis.from_url(broker.url) as redis,
    ):
        waiting = wait_in_thread(pool, broker.url, "r")
        eventually(lambda: subscribers(broker.url, "r") == 1, "the wait subscribed")
        redis.publish(CHANNEL_PREFIX + "r", b"\xff\xfe not utf-8")
        redis.publish(CHANNEL_PREFIX + "r", b'{"type":"joined","room":"r"}')
        other_room = ChatMessage.new("other", "someone", "wrong channel")
        redis.publish(CHANNEL_PREFIX + "r", other_room.encode())
        published = long_poll.publish_sync(broker.url, "r", "fine")
        assert waiting.result(timeout=READY_TIMEOUT_S) == published


def test_sync_waits_in_many_threads_all_get_the_message(broker: RedisServer) -> None:
    waiters = 8  # a gthread worker's threads, each held by its own wait
    with concurrent.futures.ThreadPoolExecutor(waiters) as pool:
        waiting = [wait_in_thread(pool, broker.url, "crowd") for _ in range(waiters)]
        eventually(lambda: subscribers(broker.url, "crowd") == waiters, "all waits subscribed")
        published = long_poll.publish_sync(broker.url, "crowd", "to all")
        assert [w.result(timeout=READY_TIMEOUT_S) for w in waiting] == [published] * waiters


GEVENT_SCENARIO = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json, sys, time

    import gevent
    from redis import Redis

    from gateway_common import long_poll

    url, room, waiters, timeout_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    greenlets = [
        gevent.spawn(long_poll.wait_sync, url, room, int(timeout_s * 1000)) for _ in range(waiters)
    ]
    # All of them subscribed at once: only possible if each wait yields to the others (one
    # thread runs them all). A wait that blocked the thread would hold the rest back.
    probe = Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    subscribed = 0
    while subscribed < waiters and time.monotonic() < deadline:
        gevent.sleep(0.01)
        subscribed = int(probe.pubsub_numsub("chat:" + room)[0][1])
    published = long_poll.publish_sync(url, room, "to every greenlet")
    received = [g.get(timeout=timeout_s) for g in greenlets]
    print(json.dumps({
        "subscribed": subscribed,
        "published": published.document(),
        "received": [m.document() if m else None for m in received],
    }))
    """
)


def test_sync_waits_under_gevent_monkey_patching_run_side_by_side(broker: RedisServer) -> None:
    waiters = 20
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCENARIO, broker.url, "green", str(waiters), "20"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["subscribed"] == waiters
    assert outcome["received"] == [outcome["published"]] * waiters


def test_sync_with_the_broker_down_raises_broker_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started: its port refuses connections
    with pytest.raises(BrokerUnavailable):
        long_poll.wait_sync(server.url, "r", 1000)
    with pytest.raises(BrokerUnavailable):
        long_poll.publish_sync(server.url, "r", "nobody hears this")


def test_a_sync_wait_that_loses_the_broker_raises_and_the_next_one_works(
    broker: RedisServer,
) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = wait_in_thread(pool, broker.url, "r")
        eventually(lambda: subscribers(broker.url, "r") == 1, "the wait subscribed")
        broker.stop()
        with pytest.raises(BrokerUnavailable):
            waiting.result(timeout=READY_TIMEOUT_S)
        broker.start()  # same port: the module's pool for this URL reconnects
        waiting = wait_in_thread(pool, broker.url, "r")
        eventually(lambda: subscribers(broker.url, "r") == 1, "the wait subscribed again")
        published = long_poll.publish_sync(broker.url, "r", "back")
        assert waiting.result(timeout=READY_TIMEOUT_S) == published


# --------------------------------------------------------------------------- async (ChatBus)


async def _started_bus(url: str) -> ChatBus:
    bus = ChatBus(url)
    await bus.start()
    assert await bus.wait_connected(CONNECT_TIMEOUT_S), "the bus did not subscribe"
    return bus


async def _members(bus: ChatBus, room: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while bus.members(room) < count:
        assert loop.time() < deadline, "the wait never joined"
        await asyncio.sleep(0.01)


def test_an_async_wait_hears_a_sync_publish_and_a_sync_wait_hears_an_async_one(
    broker: RedisServer,
) -> None:
    async def scenario() -> None:
        bus = await _started_bus(broker.url)
        try:
            # sync publisher (a WSGI worker) -> async waiter (an ASGI worker)
            waiting = asyncio.create_task(long_poll.wait_async(bus, "mixed", LONG_WAIT_MS))
            await _members(bus, "mixed", 1)
            published = await asyncio.to_thread(long_poll.publish_sync, broker.url, "mixed", "a")
            assert await asyncio.wait_for(waiting, READY_TIMEOUT_S) == published
            assert bus.members("mixed") == 0  # the wait left the room

            # async publisher -> sync waiter
            sync_wait = asyncio.create_task(
                asyncio.to_thread(long_poll.wait_sync, broker.url, "mixed", LONG_WAIT_MS)
            )
            await asyncio.to_thread(
                eventually, lambda: subscribers(broker.url, "mixed") == 1, "subscribed"
            )
            published = await long_poll.publish_async(bus, "mixed", "b")
            assert await asyncio.wait_for(sync_wait, READY_TIMEOUT_S) == published
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_an_async_wait_times_out_and_skips_other_rooms(broker: RedisServer) -> None:
    async def scenario() -> None:
        bus = await _started_bus(broker.url)
        try:
            assert await long_poll.wait_async(bus, "quiet", 0) is None
            waiting = asyncio.create_task(long_poll.wait_async(bus, "quiet", 300))
            await _members(bus, "quiet", 1)
            await long_poll.publish_async(bus, "loud", "not for the quiet room")
            assert await asyncio.wait_for(waiting, READY_TIMEOUT_S) is None
            assert bus.members("quiet") == 0
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_async_with_the_broker_down_or_lost_raises_broker_unavailable(
    broker: RedisServer,
) -> None:
    async def scenario() -> None:
        bus = await _started_bus(broker.url)
        try:
            waiting = asyncio.create_task(long_poll.wait_async(bus, "r", LONG_WAIT_MS))
            await _members(bus, "r", 1)
            await asyncio.to_thread(broker.stop)
            with pytest.raises(BrokerUnavailable):
                await asyncio.wait_for(waiting, READY_TIMEOUT_S)
            assert bus.members("r") == 0
            # Not subscribed now: a new wait and a publish fail at once.
            with pytest.raises(BrokerUnavailable):
                await long_poll.wait_async(bus, "r", LONG_WAIT_MS)
            with pytest.raises(BrokerUnavailable):
                await long_poll.publish_async(bus, "r", "lost")
        finally:
            await bus.stop()

    asyncio.run(scenario())


# --------------------------------------------------------------------------- answers


def test_answers_of_the_sync_http_layer(broker: RedisServer) -> None:
    url = broker.url
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(long_poll.answer_get_sync, url, PollParams("r", LONG_WAIT_MS))
        eventually(lambda: subscribers(url, "r") == 1, "the wait subscribed")
        posted = long_poll.answer_post_sync(url, "r", "application/json", lambda: b'{"text": "hi"}')
        got = waiting.result(timeout=READY_TIMEOUT_S)
    assert posted.status == 202
    assert posted.headers == {"Content-Type": "application/json", "Cache-Control": "no-store"}
    document = json.loads(posted.body)
    assert list(document) == ["type", "room", "from", "text", "sent_at"]
    assert (document["type"], document["room"], document["text"]) == ("message", "r", "hi")
    # The poller gets the very bytes that were published.
    assert (got.status, got.body, got.headers) == (200, posted.body, posted.headers)

    timed_out = long_poll.answer_get_sync(url, PollParams("r", 0))
    assert (timed_out.status, timed_out.body, timed_out.content_type) == (204, b"", None)
    assert timed_out.headers == {"Cache-Control": "no-store"}


def test_a_bad_body_raises_before_redis_is_asked(tmp_path: Path) -> None:
    unreachable = RedisServer(tmp_path).url  # a 503 would show that Redis was asked

    def never_read() -> bytes:
        raise AssertionError("the body was read")

    with pytest.raises(ApiError) as bad_type:
        long_poll.answer_post_sync(unreachable, "r", "text/plain", never_read)
    assert bad_type.value.status == 415
    for body, status in [(b"{", 400), (b'{"t": 1}', 422), (b"x" * 70_000, 413)]:
        with pytest.raises(ApiError) as bad_body:
            long_poll.answer_post_sync(unreachable, "r", "application/json", lambda b=body: b)
        assert bad_body.value.status == status


def test_broker_unavailable_answer_is_a_503_with_retry_after(tmp_path: Path) -> None:
    unreachable = RedisServer(tmp_path).url
    answers = [
        long_poll.answer_get_sync(unreachable, PollParams("r", 1000)),
        long_poll.answer_post_sync(unreachable, "r", "application/json", lambda: b'{"text":"x"}'),
    ]
    for answer in answers:
        assert answer.status == 503
        assert answer.headers["Retry-After"] == str(long_poll.RETRY_AFTER_S)
        assert answer.content_type == "application/json"
        assert json.loads(answer.body) == {
            "error": {
                "status": 503,
                "code": "chat_broker_unavailable",
                "message": "chat broker unavailable, try again later",
            }
        }


def test_answers_of_the_async_http_layer(broker: RedisServer) -> None:
    async def body() -> bytes:
        return b'{"text": "async hi"}'

    async def scenario() -> None:
        bus = await _started_bus(broker.url)
        try:
            waiting = asyncio.create_task(long_poll.answer_get_async(bus, PollParams("r", 20000)))
            await _members(bus, "r", 1)
            posted = await long_poll.answer_post_async(bus, "r", "application/json", body)
            got = await asyncio.wait_for(waiting, READY_TIMEOUT_S)
            assert posted.status == 202
            assert (got.status, got.body) == (200, posted.body)
            assert (await long_poll.answer_get_async(bus, PollParams("r", 0))).status == 204
            await asyncio.to_thread(broker.stop)
            # The bus notices the loss within its health-check interval; until then a publish
            # fails by itself. Either way: 503.
            lost = await long_poll.answer_post_async(bus, "r", "application/json", body)
            assert lost.status == 503
        finally:
            await bus.stop()

    asyncio.run(scenario())
