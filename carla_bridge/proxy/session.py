"""One client connection of the proxy: its calls forwarded to the real server on a connection of its
own, the answers passed back with their stream tokens pointing at the proxy; the calls that concern a
neural camera (its spawn, its token, its destroy, the tick it must deliver by) handled on the way.

A neural camera is a real rgb camera on the server (so the client's actor, transform, parent and
destroy are the server's own) whose stream the client never gets from the server: the proxy publishes
its neural frames under that stream id instead, from two helper cameras it spawns beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from carla_bridge.proxy.cameras import FLOW, HELPERS, CameraSelection, helper_description, view_of
from carla_bridge.proxy.neural import NeuralCamera, RenderFactory
from carla_bridge.proxy.streams import ProxyStreamServer, UpstreamStream
from carla_bridge.proxy.tokens import rewrite_tokens, stream_id_of
from carla_bridge.proxy.upstream import UpstreamGone, UpstreamRpc
from carla_bridge.standin import protocol
from carla_bridge.standin.actors import description_attributes
from carla_bridge.standin.streaming import decode_token

log = logging.getLogger("carla_bridge.proxy.session")

COMMAND_DESTROY = 1  # rpc::Command's variant index of DestroyActor (LibCarla/source/carla/rpc/Command.h)
SUBSCRIBE_WAIT_S = 1.0  # as the stand-in: how long a tick waits for a listen() that is under way
FRAME_WAIT_S = 10.0
"""How long a tick waits for a neural frame of that tick: a render, with room for a slow first one."""


class CameraRegistry:
    """The neural cameras of every session, by actor id (the streams server asks by stream id)."""

    def __init__(self) -> None:
        self.by_actor: dict[int, NeuralCamera] = {}

    def publishes(self, stream_id: int) -> bool:
        return any(c.stream_id == stream_id for c in list(self.by_actor.values()))

    def by_stream(self, stream_id: int) -> NeuralCamera | None:
        return next((c for c in list(self.by_actor.values()) if c.stream_id == stream_id), None)


def _ok(result: Any) -> bool:
    """Whether a CARLA Response value is an ok one (``[[1, value]]``, not ``[[0, [message]]]``)."""
    return isinstance(result, list) and len(result) == 1 and isinstance(result[0], list) and len(result[0]) == 2 \
        and result[0][0] == 1


class ClientSession:
    """Forwards one client connection's RPCs, in order, to the real server."""

    def __init__(self, upstream: UpstreamRpc, streams: ProxyStreamServer, cameras: CameraRegistry,
                 factory: RenderFactory, selection: CameraSelection) -> None:
        self.upstream = upstream
        self.streams = streams
        self.cameras = cameras
        self.factory = factory
        self.selection = selection
        self._mine: list[int] = []  # the neural cameras this client spawned (actor ids)
        self._blueprint_uids: dict[str, int] = {}

    def call(self, method: str, params: list) -> tuple[Any, Any]:
        """``(error, result)`` of one RPC, as rpclib puts them in its response."""
        args = params[1:]  # params[0] is CARLA's rpc::Metadata
        if method in ("spawn_actor", "spawn_actor_with_parent") and len(args) >= 2:
            description = args[0]
            attributes = description_attributes(description)
            if self.selection.wants(description[1], attributes):
                return self._spawn_neural(method, params, view_of(attributes))
        if method == "get_sensor_token" and args and self.cameras.by_stream(args[0]) is not None:
            self.streams.expect(args[0])  # listen() is under way: the next tick waits for it
            return None, protocol.ok([self.streams.token(args[0])])
        error, result = self.upstream.call(method, params)
        if method == "destroy_actor" and args:
            self._forget(args[0])
        elif method == "apply_batch" and args:
            for command in args[0]:
                kind, fields = command[0] if len(command) == 1 else command
                if kind == COMMAND_DESTROY:
                    self._forget(fields[0])
        elif method == "tick_cue" and _ok(result):
            self._deliver(result[0][1])
        return error, rewrite_tokens(result, self.streams)

    # ------------------------------------------------------------------ neural cameras
    def _spawn_neural(self, method: str, params: list, view: tuple[int, int, float, bool]) -> tuple[Any, Any]:
        width, height = view[:2]
        try:
            renderer = self.factory(width, height)
        except ValueError as error:  # a size the model cannot render: CARLA's error answer, nothing spawned
            return None, protocol.error(f"the neural proxy cannot render this rgb camera at {width}x{height}: "
                                        f"{error}; pick another image_size_x/image_size_y")
        error, result = self.upstream.call(method, params)
        if error is not None or not _ok(result):
            renderer.close()
            return error, result
        actor = result[0][1]
        camera = NeuralCamera(actor[0], stream_id_of(actor[5]), view, renderer, self.streams.publish)
        self.cameras.by_actor[camera.actor_id] = camera
        self._mine.append(camera.actor_id)
        for type_id in HELPERS:
            helper = self._spawn_helper(type_id, method, params)
            if isinstance(helper, str):
                self._forget(camera.actor_id)
                self.upstream.call("destroy_actor", [[False], camera.actor_id])
                return None, protocol.error(helper)
            helper_id, token = helper
            camera.helpers.append(helper_id)
            stream_id, port = decode_token(token)
            self.upstream.call("get_sensor_token", [[False], stream_id])  # as listen() does
            camera.streams.append(UpstreamStream(
                self.streams.upstream_host, port, stream_id,
                lambda payload, kind=type_id: camera.on_payload(kind, payload)))
        log.info("rgb camera %d is neural (%dx%d; helpers %s)", camera.actor_id, width, height, camera.helpers)
        return error, rewrite_tokens(result, self.streams)

    def _spawn_helper(self, type_id: str, method: str, params: list) -> tuple[int, bytes] | str:
        """(actor id, token) of a helper camera spawned as the client's call ``params`` spawned its rgb
        camera; or the reason it could not be."""
        if not self._blueprint_uids:
            error, result = self.upstream.call("get_actor_definitions", [[False]])
            if error is None and _ok(result):
                self._blueprint_uids = {definition[1]: definition[0] for definition in result[0][1]}
        if type_id not in self._blueprint_uids:
            return f"the neural proxy needs {type_id}, which the CARLA server does not offer"
        description = helper_description(params[1], type_id, self._blueprint_uids[type_id])
        error, result = self.upstream.call(method, [params[0], description, *params[2:]])
        if error is not None or not _ok(result):
            return f"the neural proxy could not spawn its {type_id}: {error or result[0][1]}"
        return result[0][1][0], result[0][1][5]

    def _forget(self, actor_id: Any) -> None:
        """The client destroyed a camera: destroy its helpers, stop its stream."""
        camera = self.cameras.by_actor.pop(actor_id, None) if isinstance(actor_id, int) else None
        if camera is None:
            return
        camera.close()
        for helper_id in camera.helpers:
            self.upstream.call("destroy_actor", [[False], helper_id])
        self.streams.close_stream(camera.stream_id)
        log.info("neural camera %d gone (helpers %s destroyed)", camera.actor_id, camera.helpers)

    def _deliver(self, frame: int) -> None:
        """Synchronous mode: the neural frames of tick ``frame`` reach the client before its tick returns
        (sync-mode code reads its camera queue right after world.tick())."""
        for camera in list(self.cameras.by_actor.values()):
            if camera.every_tick and self.streams.wait_for_subscriber(camera.stream_id, SUBSCRIBE_WAIT_S):
                if not camera.wait_for_frame(frame, FRAME_WAIT_S):
                    log.warning("neural camera %d: no frame %d within %g s", camera.actor_id, frame, FRAME_WAIT_S)

    def close(self) -> None:
        """The client left: the helper cameras it caused go (its rgb cameras stay, as on CARLA)."""
        try:
            for actor_id in list(self._mine):
                self._forget(actor_id)
        except UpstreamGone:
            pass  # the server went first: its actors, the helpers among them, went with it
        finally:
            self.upstream.close()
