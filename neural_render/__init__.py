"""The neural part: the vid2vid + SPADE generator, the runtime (renderer, backends, ONNX export and
cache), training, evaluation and metrics. Imports without pygame or carla (GPU machines carry torch and
numpy only)."""
