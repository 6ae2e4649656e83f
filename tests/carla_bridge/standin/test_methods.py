"""The stand-in's RPC method table (carla_bridge.standin.methods)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("msgpack")  # the stand-in's servers come with the carla extra

from carla_bridge.standin.methods import MethodTable  # noqa: E402


def test_unknown_rpc_is_logged_loudly_and_answered_with_an_error(caplog):
    table = MethodTable(world=None)  # the unknown-method path touches no world
    with caplog.at_level(logging.ERROR, logger="carla_bridge.standin.methods"):
        reply = table("get_imaginary_thing", [[False], 1, 2])
    assert reply == [[0, ["CARLA stand-in: RPC 'get_imaginary_thing' is not implemented"]]]
    assert "UNKNOWN RPC 'get_imaginary_thing'" in caplog.text and table.unknown_calls.counts == {"get_imaginary_thing": 1}
