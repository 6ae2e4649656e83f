"""The render service: many simulators' streams rendered in batches by one Triton Inference Server
model (PyTriton): `python -m neural_render.serve` (server.py binds the model, streams.py keeps each
stream's history and runs the batch), `python -m neural_render.serve.bench` measures it."""
