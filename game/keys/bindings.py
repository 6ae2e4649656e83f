"""The key bindings, as text: one table serves the `--help` epilog and the in-game help overlay (H or ?).

Kept free of pygame so that `python launch.py --help` answers without initialising SDL. The keys
follow CARLA's PythonAPI/examples/manual_control.py; J and K sit on keys it leaves free.
"""

from __future__ import annotations

KEY_BINDINGS: tuple[tuple[str, str], ...] = (
    ("W / Up", "throttle (ramps up while held)"),
    ("S / Down", "brake"),
    ("A / D, Left / Right", "steer left / right (ramps while held, max 0.7)"),
    ("Q", "toggle reverse"),
    ("Space", "hand brake"),
    ("P", "toggle autopilot"),
    ("Backspace", "respawn at a new spawn point (a cut: the renderer drops its history)"),
    ("R", "start / stop recording a session"),
    ("C / Shift+C", "next / previous weather or lighting preset"),
    ("TAB", "cycle layouts: side by side, render only, render with label inset"),
    ("J", "toggle the renderer's history: recurrent vs frame by frame (flicker demo)"),
    ("K", "cycle through the available inference backends"),
    ("F1", "toggle the HUD"),
    ("H / ?", "toggle this help"),
    ("ESC / Ctrl+Q", "quit"),
)

# manual_control.py keys with nothing behind them here (there is no CARLA-side camera rig, lights or
# recorder to drive): said in the help, so a manual_control user is not left guessing.
NOT_BOUND = "M , . (gears)  ` N 1-9 (sensors)  G L Z X I (lights)  O T V B  Ctrl+R Ctrl+P (CARLA recorder)"


def bindings_text(indent: str = "  ") -> str:
    """The table as aligned plain text (for the argparse epilog)."""
    width = max(len(keys) for keys, _ in KEY_BINDINGS)
    rows = [f"{indent}{keys:<{width}}  {action}" for keys, action in KEY_BINDINGS]
    return "\n".join([*rows, f"{indent}not bound (manual_control.py has them): {NOT_BOUND}"])
