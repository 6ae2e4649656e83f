"""The window: display, pane layout, HUD."""
