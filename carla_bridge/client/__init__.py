"""The CARLA 0.9.16 client source: SceneFrames from a CARLA server through the ``carla`` library."""
