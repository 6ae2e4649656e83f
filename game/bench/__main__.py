"""The measuring tools, one entry: `python -m game.bench <tool> [flags]`; `<tool> --help` for its flags.

Each tool is its own module with its own main(argv); only the one named is imported, so `suite` runs on
a GPU machine with torch, numpy, onnx and onnxruntime and nothing else (no pygame, no carla), and
`--help` answers without importing torch.
"""

from __future__ import annotations

import importlib
import sys

TOOLS = {
    "generator": ("game.bench.generator", "throughput and latency of the generator on one backend"),
    "suite": ("game.bench.suite", "every GPU inference path in one run, one JSON file"),
    "kernels": ("game.bench.kernels", "torch.profiler over Renderer.render: the top operators"),
    "recording": ("game.bench.recording", "frame time of a headless loop with and without recording"),
    "profiler": ("game.bench.profiler_overhead", "frame time with the latency profiler on and off"),
    "proxy": ("game.bench.proxy", "what the CARLA proxy adds per frame per neural camera beyond the render"),
}


def usage() -> str:
    width = max(map(len, TOOLS))
    return ("usage: python -m game.bench <tool> [flags]   (<tool> --help for its flags)\n\ntools:\n"
            + "\n".join(f"  {name:<{width}}  {about}" for name, (_, about) in TOOLS.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in TOOLS:
        print(f"{usage()}\n\nerror: unknown tool {argv[0]!r}; choose one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    return importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
