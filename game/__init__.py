"""The interactive app: window, keyboard, HUD, frame loop and profiler."""
