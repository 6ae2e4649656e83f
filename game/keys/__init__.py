"""The keyboard: controls and key bindings, after CARLA's manual_control.py."""
