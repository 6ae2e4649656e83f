"""A CARLA 0.9.16 proxy: an unchanged CARLA program points at it, and its rgb cameras show neural frames.

It speaks CARLA's wire protocol to the client and to the real server behind it (the stand-in's framing
modules: carla_bridge.standin.rpc, .streaming, .protocol). Modules, one job each: upstream (the
msgpack-rpc connection to the real server), streams (the streaming port: relays and the neural
cameras' streams), tokens (stream tokens rewritten to point at the proxy), session (one client
connection's calls), server (``ProxyServer``: wires them up), __main__ (the CLI, which builds the
Renderer: the proxy itself takes a render factory and imports nothing of neural_render).
"""
