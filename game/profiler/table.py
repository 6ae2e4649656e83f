"""Plain-text tables for the console: the per-stage latency table and the backend comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-align the first column, right-align the rest; floats with 2 decimals, None as '-'."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [values[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(values[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line([str(h) for h in headers]), rule] + [line(row) for row in cells])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if 0 < abs(value) < 0.005:  # a few microseconds: "0.00" would read as "did not run"
            return "<0.01" if value > 0 else ">-0.01"
        return f"{value:.2f}"
    return str(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


STAGE_COLUMNS = ("count", "mean", "stdev", "p50", "p90", "p95", "p99", "max")


def stage_table(report: dict[str, Any]) -> str:
    """The end-of-run console table from a report dict (see report.build_report)."""
    rows = []
    for name, summary in report["stages"].items():
        rows.append([name] + [summary.get(key) for key in STAGE_COLUMNS])
    rows.append([report["end_to_end_name"]] + [report["end_to_end"].get(k) for k in STAGE_COLUMNS])
    for name, summary in report.get("device_ms", {}).items():
        rows.append([f"{name} (device)"] + [summary.get(key) for key in STAGE_COLUMNS])
    frames = report["frames"]
    fps = report["fps"]
    head = (
        f"latency (ms) - backend {report.get('backend')} on {report.get('device')}, "
        f"{report.get('precision')}, {report.get('resolution')}, source {report.get('source')}\n"
        f"{_plural(frames['measured'], 'frame')} measured, {_plural(frames['warmup_skipped'], 'warm-up frame')} "
        f"skipped, {'-' if fps is None else f'{fps:.1f}'} fps (measured frames / wall time, over every stage below)"
    )
    if report.get("device_ms"):
        every = report.get("device_sampled_every_n_frames") or 1
        head += f"; device (CUDA event) times sampled on 1 frame in {every}" if every > 1 else ""
    run = report.get("run") or {}
    if run.get("cut_short"):
        by = f" by {run['ended_by']}" if run.get("ended_by") else ""
        head += (f"\ncut short{by} after {frames['recorded']} of {run['frames_requested']} requested frames: "
                 "the figures cover the frames measured before it stopped")
    return head + "\n" + format_table(["stage", *STAGE_COLUMNS], rows)


COMPARE_COLUMNS = ("backend", "device", "precision", "frames", "p50", "p95", "p99", "mean", "fps")


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per backend: end-to-end render latency p50/p95/p99, mean (ms) and fps."""
    body = []
    for row in rows:
        if row.get("error"):
            body.append([row["backend"], row.get("device"), row.get("precision"), 0]
                        + [None] * 5)
            continue
        cells = [row.get(key) for key in COMPARE_COLUMNS]
        cells[0] = backend_label(row)
        if row.get("cut_short"):  # fewer frames than the others: say so on its own line
            cells[0] = f"{cells[0]} (cut short)"
        body.append(cells)
    text = format_table(COMPARE_COLUMNS, body) + fastest_line(rows)
    errors = [f"  {r['backend']}: {r['error']}" for r in rows if r.get("error")]
    return text + ("\nfailed or not run:\n" + "\n".join(errors) if errors else "")


def backend_label(row: dict[str, Any]) -> str:
    """The backend's name, and "compiled" when its frames ran so (--compile): a compiled torch and an
    uncompiled one are different contenders."""
    return f"{row['backend']} compiled" if row.get("compiled") else str(row["backend"])


def fastest_line(rows: Sequence[dict[str, Any]]) -> str:
    """'fastest: X (p50 ... ms, N.Nx faster than the runner-up Y)' over the rows that measured frames;
    '' with fewer than two. By end-to-end p50: the typical frame, which one slow outlier does not move."""
    timed = sorted((r for r in rows if not r.get("error") and r.get("p50")), key=lambda r: r["p50"])
    if len(timed) < 2:  # one backend measured is no comparison
        return ""
    best, runner_up = timed[0], timed[1]
    return (f"\nfastest: {backend_label(best)} (p50 {best['p50']:.2f} ms, "
            f"{runner_up['p50'] / best['p50']:.1f}x faster than {backend_label(runner_up)})")
