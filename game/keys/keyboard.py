"""Keyboard to Control, after CARLA's PythonAPI/examples/manual_control.py (KeyboardControl).

Driving keys ramp as there: throttle +0.1 per tick while held, brake +0.2 per tick, steering
+5e-4 per millisecond held (reset when the direction flips, clamped to 0.7, rounded to 0.1).
Held keys are tracked from KEYDOWN/KEYUP events rather than pygame.key.get_pressed(), so that events
posted by tests (and by the SDL dummy driver, which has no keyboard state) drive the car the same way.
Every other key is a one-shot action that the App carries out (App._ACTIONS).
"""

from __future__ import annotations

import pygame

from carla_bridge.core.frames import Control

STEER_PER_MS = 5e-4  # manual_control.py: steer_increment = 5e-4 * milliseconds
STEER_LIMIT = 0.7
THROTTLE_STEP = 0.1
BRAKE_STEP = 0.2

# One-shot keys -> the action names App._ACTIONS carries out.
_ACTION_KEYS = {
    pygame.K_p: "autopilot",
    pygame.K_BACKSPACE: "respawn",
    pygame.K_r: "record",
    pygame.K_TAB: "layout",
    pygame.K_j: "history",
    pygame.K_k: "backend",
    pygame.K_F1: "hud",
    pygame.K_h: "help",
    pygame.K_ESCAPE: "quit",
}
_THROTTLE = (pygame.K_w, pygame.K_UP)
_BRAKE = (pygame.K_s, pygame.K_DOWN)
_LEFT = (pygame.K_a, pygame.K_LEFT)
_RIGHT = (pygame.K_d, pygame.K_RIGHT)


class KeyboardController:
    """Turns pygame events into the ego Control of this tick and a list of one-shot actions."""

    def __init__(self, autopilot: bool = False) -> None:
        self.autopilot = autopilot
        self.reverse = False
        self.throttle = 0.0
        self.brake = 0.0
        self.hand_brake = False
        self._steer_cache = 0.0
        self._held: set[int] = set()

    def parse_events(self, events, milliseconds: float) -> list[str]:
        """Consume this tick's events; returns the actions in the order pressed."""
        actions: list[str] = []
        for event in events:
            if event.type == pygame.QUIT:
                actions.append("quit")
            elif event.type == pygame.KEYDOWN:
                self._held.add(event.key)
                action = self._key_action(event)
                if action == "autopilot":
                    self.autopilot = not self.autopilot
                if action:
                    actions.append(action)
            elif event.type == pygame.KEYUP:
                self._held.discard(event.key)
            elif event.type == pygame.WINDOWFOCUSLOST:
                self._held.clear()  # the KEYUPs of a window we left never arrive
        self._ramp(milliseconds)
        return actions

    def _key_action(self, event) -> str | None:
        mods = event.mod
        if event.key == pygame.K_q:
            if mods & pygame.KMOD_CTRL:
                return "quit"
            self.reverse = not self.reverse
            return "reverse"
        if event.key == pygame.K_c:
            return "weather_prev" if mods & pygame.KMOD_SHIFT else "weather_next"
        if event.key == pygame.K_QUESTION or event.unicode == "?" or (
            event.key == pygame.K_SLASH and mods & pygame.KMOD_SHIFT
        ):
            return "help"
        return _ACTION_KEYS.get(event.key)

    def _held_any(self, keys: tuple[int, ...]) -> bool:
        return any(key in self._held for key in keys)

    def _ramp(self, milliseconds: float) -> None:
        if self.autopilot:
            # The autopilot drives; like manual_control, manual keys are ignored and start from rest after.
            self.throttle = self.brake = self._steer_cache = 0.0
            self.hand_brake = False
            return
        self.throttle = min(self.throttle + THROTTLE_STEP, 1.0) if self._held_any(_THROTTLE) else 0.0
        self.brake = min(self.brake + BRAKE_STEP, 1.0) if self._held_any(_BRAKE) else 0.0
        increment = STEER_PER_MS * milliseconds
        if self._held_any(_LEFT):
            self._steer_cache = 0.0 if self._steer_cache > 0 else self._steer_cache - increment
        elif self._held_any(_RIGHT):
            self._steer_cache = 0.0 if self._steer_cache < 0 else self._steer_cache + increment
        else:
            self._steer_cache = 0.0
        self._steer_cache = max(-STEER_LIMIT, min(STEER_LIMIT, self._steer_cache))
        self.hand_brake = pygame.K_SPACE in self._held

    def control(self) -> Control:
        """The Control to send this tick."""
        return Control(
            throttle=round(self.throttle, 3),
            steer=round(self._steer_cache, 1),
            brake=round(self.brake, 3),
            hand_brake=self.hand_brake,
            reverse=self.reverse,
            autopilot=self.autopilot,
        )
