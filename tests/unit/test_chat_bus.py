"""The chat bus against a real redis-server: two bus instances stand in for two uvicorn workers.

Each test gets its own redis-server (a free loopback port, configured from the stack's
template), so stopping it for an outage disturbs nothing else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from gateway_common.chat_bus import (
    BROKER_LOST,
    CHANNEL_PREFIX,
    MAX_MESSAGE_BYTES,
    MEMBER_QUEUE_SIZE,
    RECONNECT_MAX_S,
    BrokerUnavailable,
    ChatBus,
    ChatMessage,
    Member,
    MessageTooLarge,
    new_member_id,
)
from tests.redis_server import RedisServer, running_redis

# Generous bounds for a shared machine; they only stop a broken test from hanging.
RECEIVE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
RECOVERY_TIMEOUT_S = 10 * RECONNECT_MAX_S  # room for several reconnect attempts


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


async def _receive(member: Member) -> dict:
    text = await asyncio.wait_for(member.queue.get(), timeout=RECEIVE_TIMEOUT_S)
    assert text is not BROKER_LOST
    return json.loads(text)


async def _started(url: str, states: list[bool] | None = None) -> ChatBus:
    bus = ChatBus(url, on_state_change=None if states is None else states.append)
    await bus.start()
    assert await bus.wait_connected(CONNECT_TIMEOUT_S), "the bus did not subscribe"
    return bus


# Production runs on uvloop (serve.py), unit tests elsewhere on asyncio: cover both.
LOOP_FACTORIES = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.mark.parametrize("loop_name", sorted(LOOP_FACTORIES))
def test_delivers_across_two_buses(broker: RedisServer, loop_name: str) -> None:
    async def scenario() -> None:
        worker_a = await _started(broker.url)
        worker_b = await _started(broker.url)
        try:
            on_a = worker_a.join("lobby")
            on_b = worker_b.join("lobby")
            other_room_on_b = worker_b.join("other")
            await worker_a.publish({"type": "message", "room": "lobby", "text": "hi"})
            assert (await _receive(on_a))["text"] == "hi"  # own worker: same path
            assert (await _receive(on_b))["text"] == "hi"  # other worker
            # A later message to the other room arrives; the lobby's never did.
            await worker_a.publish({"type": "message", "room": "other", "text": "there"})
            assert (await _receive(other_room_on_b))["text"] == "there"
        finally:
            await worker_a.stop()
            await worker_b.stop()

    with asyncio.Runner(loop_factory=LOOP_FACTORIES[loop_name]) as runner:
        runner.run(scenario())


def test_largest_message_crosses_workers(broker: RedisServer) -> None:
    async def scenario() -> None:
        worker_a = await _started(broker.url)
        worker_b = await _started(broker.url)
        try:
            member = worker_b.join("r")
            text = "y" * (MAX_MESSAGE_BYTES - 100)
            await worker_a.publish({"room": "r", "text": text})
            assert (await _receive(member))["text"] == text
        finally:
            await worker_a.stop()
            await worker_b.stop()

    asyncio.run(scenario())


def test_refuses_messages_over_the_bound(broker: RedisServer) -> None:
    async def scenario() -> None:
        bus = await _started(broker.url)
        try:
            with pytest.raises(MessageTooLarge):
                await bus.publish({"room": "r", "text": "x" * MAX_MESSAGE_BYTES})
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_full_member_queue_drops_instead_of_blocking(broker: RedisServer) -> None:
    async def scenario() -> None:
        bus = await _started(broker.url)
        try:
            slow = bus.join("r")
            for seq in range(MEMBER_QUEUE_SIZE + 10):
                await bus.publish({"room": "r", "seq": seq})
            # Poll until the subscriber has delivered everything it will (the queue is full).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RECEIVE_TIMEOUT_S
            while not slow.queue.full() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert slow.queue.full()
            await bus.publish({"room": "r", "seq": "after"})  # still accepted, dropped for it
            first = json.loads(slow.queue.get_nowait())
            assert first["seq"] == 0
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_malformed_messages_on_the_channel_are_dropped(broker: RedisServer) -> None:
    async def scenario() -> None:
        bus = await _started(broker.url)
        try:
            member = bus.join("r")
            assert bus._client is not None
            await bus._client.publish(CHANNEL_PREFIX + "r", b"\xff\xfe not utf-8")
            await bus.publish({"room": "r", "text": "fine"})
            assert (await _receive(member))["text"] == "fine"
            assert member.queue.empty()
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_start_with_the_broker_down_then_connects_when_it_comes(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # not started yet

    async def scenario() -> None:
        states: list[bool] = []
        bus = ChatBus(server.url, on_state_change=states.append)
        await bus.start()
        try:
            assert not await bus.wait_connected(0.5)
            with pytest.raises(BrokerUnavailable):
                await bus.publish({"room": "r", "text": "nobody hears this"})
            await asyncio.to_thread(server.start)
            assert await bus.wait_connected(RECOVERY_TIMEOUT_S)
            member = bus.join("r")
            await bus.publish({"room": "r", "text": "now"})
            assert (await _receive(member))["text"] == "now"
            assert states[0] is False and states[-1] is True
        finally:
            await bus.stop()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_broker_loss_reaches_members_and_the_bus_recovers(broker: RedisServer) -> None:
    async def scenario() -> None:
        states: list[bool] = []
        bus = await _started(broker.url, states)
        try:
            member = bus.join("r")
            await asyncio.to_thread(broker.stop)
            lost = await asyncio.wait_for(member.queue.get(), timeout=RECOVERY_TIMEOUT_S)
            assert lost is BROKER_LOST
            assert not bus.connected
            assert states[-1] is False
            with pytest.raises(BrokerUnavailable):
                await bus.publish({"room": "r", "text": "lost"})

            await asyncio.to_thread(broker.start)
            # Reconnects by itself (no restart): attempts are at most RECONNECT_MAX_S apart.
            assert await bus.wait_connected(RECOVERY_TIMEOUT_S)
            assert states[-1] is True
            again = bus.join("r")
            await bus.publish({"room": "r", "text": "back"})
            assert (await _receive(again))["text"] == "back"
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_leave_removes_empty_rooms(broker: RedisServer) -> None:
    async def scenario() -> None:
        bus = await _started(broker.url)
        try:
            member = bus.join("r")
            assert bus.members("r") == 1
            bus.leave(member)
            bus.leave(member)  # twice is harmless
            assert bus.members("r") == 0
        finally:
            await bus.stop()

    asyncio.run(scenario())


def test_chat_message_document_and_round_trip() -> None:
    message = ChatMessage.new("lobby", new_member_id(), 'héllo \u0000 "x"')
    document = message.document()
    assert list(document) == ["type", "room", "from", "text", "sent_at"]
    assert document["type"] == "message"
    assert len(document["from"]) == 12 and int(document["from"], 16) >= 0
    data = message.encode()
    assert data == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert ChatMessage.decode(data) == message
    assert ChatMessage.decode(data.decode()) == message


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",
        b"not json",
        b"[]",
        b'{"type":"joined","room":"r","id":"x"}',
        b'{"type":"message","room":"r","from":"a","text":5,"sent_at":1.0}',
        b'{"type":"message","room":"r","from":"a","text":"t","sent_at":true}',
        b'{"type":"message","room":"r","text":"t","sent_at":1.0}',
    ],
)
def test_chat_message_decode_refuses_what_is_not_a_chat_message(data: bytes) -> None:
    assert ChatMessage.decode(data) is None


def test_encode_refuses_over_the_bound() -> None:
    with pytest.raises(MessageTooLarge):
        ChatMessage.new("r", "a", "x" * MAX_MESSAGE_BYTES).encode()


def test_stop_ends_the_subscriber_however_soon_after_start(broker: RedisServer) -> None:
    # A stop within milliseconds of start lands while the subscriber connects, subscribes or
    # writes its first health check; each of those moments must still end it (a subscriber that
    # runs on holds the server's lifespan shutdown).
    attempts = 60

    async def scenario() -> None:
        for attempt in range(attempts):
            bus = ChatBus(broker.url)
            await bus.start()
            await asyncio.sleep((attempt % 6) / 1000)
            await asyncio.wait_for(bus.stop(), CONNECT_TIMEOUT_S)

    asyncio.run(scenario())
