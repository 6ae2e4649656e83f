"""The live view: foxglove-sdk's WebSocket server on 127.0.0.1 advertises the MCAP session's channels
and delivers a tick's messages, the same bytes an MCAP file holds, to a real client."""

from __future__ import annotations

import asyncio
import json

import pytest

from carla_bridge.core.frames import Control
from carla_bridge.session.live import LiveView
from carla_bridge.session.mcap_format import STREAMS
from game.bench.workloads import synthetic_frame
from support.foxglove_ws import SUBPROTOCOL, data_message, subscribe_all
from support.sessions import SIZE

websockets = pytest.importorskip("websockets")


@pytest.fixture
def live():
    view = LiveView(port=0)
    yield view
    view.close()


async def _receive_one_tick(live: LiveView) -> dict[str, bytes]:
    async with websockets.connect(live.url, subprotocols=[SUBPROTOCOL]) as client:
        topics = await subscribe_all(client, len(STREAMS))
        frame = synthetic_frame(4, SIZE)
        got: dict[str, bytes] = {}
        while "/frame" not in got:
            live.publish(frame, Control(throttle=0.5), frame.rgb, {"inference": 3.0})  # until subscribed
            try:
                while True:
                    data = data_message(await asyncio.wait_for(client.recv(), 0.3), topics)
                    if data:
                        got[data[0]] = data[1]
            except TimeoutError:
                continue
        return got

def test_a_client_receives_a_tick_on_127_0_0_1(live):
    assert live.url.startswith("ws://127.0.0.1:")
    got = asyncio.run(_receive_one_tick(live))
    assert set(STREAMS) - {"/depth"} <= set(got)  # the synthetic frame has no depth
    assert json.loads(got["/control"])["throttle"] == 0.5
    assert json.loads(got["/timings"]) == {"inference": 3.0}
    record = json.loads(got["/frame"])
    assert record["index"] == 4 and "/labels/ids" in record["topics"]


def test_a_port_in_use_is_refused(live):
    with pytest.raises(RuntimeError):
        LiveView(port=live.port)


def test_nothing_is_encoded_without_a_client(live, monkeypatch):
    import carla_bridge.session.live as module

    monkeypatch.setattr(module, "encode_tick", lambda *args: pytest.fail("encoded for nobody"))
    frame = synthetic_frame(0, SIZE)
    live.publish(frame, Control(), frame.rgb, {})
    assert live.ticks == 1
