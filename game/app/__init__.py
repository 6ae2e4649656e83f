"""The running app: its state and its tick."""
