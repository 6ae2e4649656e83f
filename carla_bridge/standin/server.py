"""StandinServer: the CARLA 0.9.16 wire-protocol server whose world is the procedural world.

msgpack-rpc on 127.0.0.1:port, streaming on port + 1 (CARLA's layout). In asynchronous mode a
ticker thread advances the world every fixed delta (0.05 s when unset) of wall time; in synchronous
mode only the client's ``world.tick()`` (tick_cue) does.
"""

from __future__ import annotations

import logging
import threading

from carla_bridge.procedural import ProceduralWorld, WorldConfig
from carla_bridge.standin.methods import MethodTable
from carla_bridge.standin.rpc import RpcServer
from carla_bridge.standin.streaming import StreamServer
from carla_bridge.standin.world import EPISODE_STREAM, StandinWorld

log = logging.getLogger("carla_bridge.standin")

HOST = "127.0.0.1"


def make_procedural_world(seed: int = 0, size: tuple[int, int] = (512, 256),
                          pedestrians: int | None = None) -> ProceduralWorld:
    """The procedural world a stand-in serves: no traffic of its own (a fresh CARLA map has no
    vehicles); its pedestrians walk (they are scenery, not actors), unless ``pedestrians=0``."""
    width, height = size
    options: dict[str, int] = {"width": width, "height": height, "seed": seed, "n_vehicles": 0}
    if pedestrians is not None:
        options["n_pedestrians"] = pedestrians
    return ProceduralWorld(WorldConfig(**options))


def warm_up(world: ProceduralWorld) -> None:
    """Compile the renderer's numba kernels before listening (about 10 s on a fresh install, a few ms
    from numba's cache), so that no client call times out waiting for the first camera frame."""
    pose = world.ego_camera_pose()
    world.render_camera(pose, pose, 32, 16, 90.0)


class StandinServer:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent); also a context manager."""

    def __init__(self, port: int = 2000, seed: int = 0, size: tuple[int, int] = (512, 256),
                 world: ProceduralWorld | None = None, host: str = HOST, pedestrians: int | None = None) -> None:
        if not 1 <= port <= 65534:
            raise ValueError(f"--port must lie in 1..65534 (streaming uses port + 1), got {port}")
        self.host, self.port = host, port
        procedural = world if world is not None else make_procedural_world(seed, size, pedestrians)
        warm_up(procedural)
        self.streams = StreamServer(host, port + 1, exists=self._stream_exists)
        try:
            self.world = StandinWorld(procedural, self.streams)
            self.methods = MethodTable(self.world)
            self.rpc = RpcServer(host, port, self.methods)
        except Exception:
            self.streams.stop()
            raise
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._async_ticks, name="standin-ticker", daemon=True)
        self._stopped = False

    def start(self) -> StandinServer:
        self.streams.start()
        self.rpc.start()
        self._ticker.start()
        log.info("CARLA stand-in listening on %s:%d (rpc) and %d (streaming)", self.host, self.port, self.port + 1)
        return self

    def stop(self) -> None:
        """Stop ticking, close every connection and listener; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self.rpc.stop()
        self.streams.stop()
        if self._ticker.is_alive():
            self._ticker.join(timeout=2.0)
        if self.methods.unknown_calls:
            log.error("unknown RPCs were called: %s", self.methods.unknown_calls.summary())
        log.info("CARLA stand-in stopped at frame %d", self.world.frame)

    def _stream_exists(self, stream_id: int) -> bool:
        """The episode's stream and live sensors' (called only once start() has run: self.world is set)."""
        return stream_id == EPISODE_STREAM or any(a.stream_id == stream_id for a in self.world.actors.all())

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until stop() (returns True) or the timeout (False)."""
        return self._stop.wait(timeout_s)

    def _async_ticks(self) -> None:
        while not self._stop.wait(self.world.delta_s):
            if self.world.synchronous:
                continue
            try:
                self.world.tick()
            except Exception:  # a broken tick must not silently end asynchronous time
                log.exception("asynchronous tick failed")

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
