"""The cross-worker chat bus: two bus instances stand in for two uvicorn workers."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from gateway_common.chat_bus import MAX_MESSAGE_BYTES, ChatBus, Member, MessageTooLarge


@pytest.fixture
def bus_dir() -> Iterator[Path]:
    # Short path: unix socket paths are limited to 107 bytes, pytest's tmp_path can be long.
    with tempfile.TemporaryDirectory(prefix="chat-") as directory:
        yield Path(directory)


async def _receive(member: Member) -> dict:
    return json.loads(await asyncio.wait_for(member.queue.get(), timeout=2))


# Production runs on uvloop (serve.py), unit tests elsewhere on asyncio: cover both.
LOOP_FACTORIES = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.mark.parametrize("loop_name", sorted(LOOP_FACTORIES))
def test_delivers_across_two_buses(bus_dir: Path, loop_name: str) -> None:
    async def scenario() -> None:
        worker_a = ChatBus(bus_dir, socket_name="chat-1.sock")
        worker_b = ChatBus(bus_dir, socket_name="chat-2.sock")
        await worker_a.start()
        await worker_b.start()
        try:
            on_a = worker_a.join("lobby")
            on_b = worker_b.join("lobby")
            other_room_on_b = worker_b.join("other")
            worker_a.publish({"type": "message", "room": "lobby", "text": "hi"})
            assert (await _receive(on_a))["text"] == "hi"  # own worker: same path
            assert (await _receive(on_b))["text"] == "hi"  # other worker
            await asyncio.sleep(0.05)
            assert other_room_on_b.queue.empty()
        finally:
            await worker_a.stop()
            await worker_b.stop()
        assert list(bus_dir.iterdir()) == []  # sockets removed on stop

    with asyncio.Runner(loop_factory=LOOP_FACTORIES[loop_name]) as runner:
        runner.run(scenario())


def test_removes_sockets_of_dead_workers(bus_dir: Path) -> None:
    stale = bus_dir / "chat-999999.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: a worker killed with SIGKILL

    async def scenario() -> None:
        bus = ChatBus(bus_dir, socket_name="chat-1.sock")
        await bus.start()
        try:
            member = bus.join("r")
            bus.publish({"room": "r", "text": "x"})
            assert (await _receive(member))["text"] == "x"
        finally:
            await bus.stop()

    assert stale.exists()
    asyncio.run(scenario())
    assert not stale.exists()


def test_in_process_fallback_without_directory() -> None:
    async def scenario() -> None:
        bus = ChatBus(None)
        await bus.start()
        member = bus.join("r")
        bus.publish({"room": "r", "text": "local"})
        assert (await _receive(member))["text"] == "local"
        bus.leave(member)
        assert bus.members("r") == 0
        await bus.stop()

    asyncio.run(scenario())


def test_refuses_messages_over_the_bound() -> None:
    bus = ChatBus(None)
    with pytest.raises(MessageTooLarge):
        bus.publish({"room": "r", "text": "x" * MAX_MESSAGE_BYTES})


def test_largest_message_crosses_workers(bus_dir: Path) -> None:
    async def scenario() -> None:
        worker_a = ChatBus(bus_dir, socket_name="chat-1.sock")
        worker_b = ChatBus(bus_dir, socket_name="chat-2.sock")
        await worker_a.start()
        await worker_b.start()
        try:
            member = worker_b.join("r")
            text = "y" * (MAX_MESSAGE_BYTES - 100)
            worker_a.publish({"room": "r", "text": text})
            assert (await _receive(member))["text"] == text
        finally:
            await worker_a.stop()
            await worker_b.stop()

    asyncio.run(scenario())


def test_malformed_datagram_is_dropped() -> None:
    bus = ChatBus(None)
    member = bus.join("r")
    bus.deliver_local(b"not json")
    bus.deliver_local(b'{"no_room": 1}')
    assert member.queue.empty()
