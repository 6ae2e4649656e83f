"""Latency profiling: per-stage frame timing (profiler), report.json and the console table (report,
table), the Chrome trace (trace), latency.png (plot), the game loop's glue and HUD figures (hooks)
and the backend comparison of `--profile --backend all` (compare).

    profiler = Profiler(enabled=args.profile, warmup_frames=10, use_cuda=on_cuda)
    profiler.begin_frame()                     # controls sampled
    with profiler.stage("source"): frame = source.step(control)
    image = timed_render(profiler, renderer, frame)   # Renderer.last_timings -> spans
    with profiler.stage("display"): ...flip...
    profiler.end_frame()                       # frame on screen
    write_report(profiler, "reports/run", meta)

The package imports nothing itself: import the module whose names you use.
"""
