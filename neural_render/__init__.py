"""The neural part: the vid2vid + SPADE generator, ONNX export, inference backends, the renderer,
training and metrics. Imports without pygame or carla (GPU machines carry torch and numpy only)."""
