"""Keys to Control (game/keys/keyboard.py) with manual_control.py's ramps, from synthesized events."""

from __future__ import annotations

import pytest

pygame = pytest.importorskip("pygame")

from game.keys.keyboard import KeyboardController  # noqa: E402


def down(key, mod=0, unicode=""):
    return pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod, unicode=unicode)


def up(key):
    return pygame.event.Event(pygame.KEYUP, key=key, mod=0)


def test_throttle_ramps_while_held_and_drops_on_release():
    keys = KeyboardController()
    keys.parse_events([down(pygame.K_w)], 50)
    assert keys.control().throttle == pytest.approx(0.1)
    for _ in range(20):
        keys.parse_events([], 50)
    assert keys.control().throttle == 1.0
    keys.parse_events([up(pygame.K_w)], 50)
    assert keys.control().throttle == 0.0


def test_brake_and_hand_brake():
    keys = KeyboardController()
    keys.parse_events([down(pygame.K_DOWN), down(pygame.K_SPACE)], 50)
    control = keys.control()
    assert control.brake == pytest.approx(0.2) and control.hand_brake


def test_steering_ramps_with_time_clamps_and_resets_on_direction_change():
    keys = KeyboardController()
    keys.parse_events([down(pygame.K_a)], 200)  # 5e-4 * 200 ms = 0.1
    assert keys.control().steer == pytest.approx(-0.1)
    for _ in range(20):
        keys.parse_events([], 200)
    assert keys.control().steer == pytest.approx(-0.7)  # manual_control's clamp
    keys.parse_events([up(pygame.K_a), down(pygame.K_RIGHT)], 200)
    assert keys.control().steer == 0.0  # flipping direction starts from the centre
    keys.parse_events([], 400)
    assert keys.control().steer == pytest.approx(0.2)


def test_one_shot_keys_map_to_actions():
    keys = KeyboardController()
    events = [down(pygame.K_p), down(pygame.K_BACKSPACE), down(pygame.K_r), down(pygame.K_c),
              down(pygame.K_c, pygame.KMOD_LSHIFT), down(pygame.K_TAB), down(pygame.K_j), down(pygame.K_k),
              down(pygame.K_F1), down(pygame.K_h), down(pygame.K_SLASH, pygame.KMOD_SHIFT, "?")]
    assert keys.parse_events(events, 16) == [
        "autopilot", "respawn", "record", "weather_next", "weather_prev", "layout", "history", "backend",
        "hud", "help", "help"]
    assert keys.autopilot


def test_reverse_quit_and_window_close():
    keys = KeyboardController()
    assert keys.parse_events([down(pygame.K_q)], 16) == ["reverse"] and keys.control().reverse
    assert keys.parse_events([down(pygame.K_q, pygame.KMOD_LCTRL)], 16) == ["quit"]
    assert keys.control().reverse  # Ctrl+Q quits without touching the gear
    assert keys.parse_events([down(pygame.K_ESCAPE)], 16) == ["quit"]
    assert keys.parse_events([pygame.event.Event(pygame.QUIT)], 16) == ["quit"]


def test_autopilot_ignores_driving_keys():
    keys = KeyboardController(autopilot=True)
    keys.parse_events([down(pygame.K_w), down(pygame.K_a)], 100)
    control = keys.control()
    assert control.autopilot and control.throttle == 0.0 and control.steer == 0.0
    keys.parse_events([down(pygame.K_p)], 100)  # W is still held: manual driving resumes
    assert not keys.control().autopilot and keys.control().throttle == pytest.approx(0.1)
