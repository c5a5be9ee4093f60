"""The live-status stream's pure parts: cursors a client can resume from, and a client that
stops reading being cut loose instead of holding its stream open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import api.live as live
from api.live import BadCursor, LiveConnections, decode_cursor, encode_cursor


def test_a_cursor_round_trips_every_partition_position() -> None:
    positions = {0: 0, 1: 17, 5: 2**40}
    assert decode_cursor(encode_cursor(positions), partitions=6) == positions


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        "bm90LWpzb24",  # "not-json"
        "WzEsMl0",  # [1,2]: not an object
        encode_cursor({9: 1}),  # a partition the topic does not have
        "eyIwIjotMX0",  # {"0":-1}
        "eyIwIjoiMSJ9",  # {"0":"1"}
        "A" * 5000,
    ],
)
def test_a_cursor_the_api_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor, partitions=6)


def test_connection_caps_per_merchant_and_per_process() -> None:
    caps = LiveConnections()
    opened = [caps.try_open("m_a") for _ in range(live.CONNECTIONS_PER_MERCHANT_MAX + 1)]
    assert opened.count(True) == live.CONNECTIONS_PER_MERCHANT_MAX and opened[-1] is False
    caps.close("m_a")
    assert caps.try_open("m_a")
    assert caps.try_open("m_b")


class _StuckSocket:
    """A WebSocket whose client never takes a frame: every send waits forever."""

    async def send_text(self, text: str) -> None:
        await asyncio.Event().wait()


async def test_a_client_that_takes_no_frames_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "SEND_TIMEOUT_S", 0.01)
    stream: Any = object.__new__(live._Stream)
    stream.websocket = _StuckSocket()
    stream.positions = {0: 3}
    with pytest.raises(TimeoutError):
        await stream._send({"type": "heartbeat"})
