"""The bottom layer: the data model (frames, labels) and the general helpers (argparse types, file
writes, value checks) that every package may import. It imports nothing else of the project."""
