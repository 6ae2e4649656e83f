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
        return f"{value:.2f}"
    return str(value)


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
        f"{frames['measured']} frames measured, {frames['warmup_skipped']} warm-up frames skipped, "
        f"{'-' if fps is None else f'{fps:.1f}'} fps (measured frames / wall time, over every stage below)"
    )
    if report.get("device_ms"):
        every = report.get("device_sampled_every_n_frames") or 1
        head += f"; device (CUDA event) times sampled on every {every}th frame" if every > 1 else ""
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
        body.append([row.get(key) for key in COMPARE_COLUMNS])
    text = format_table(COMPARE_COLUMNS, body)
    errors = [f"  {r['backend']}: {r['error']}" for r in rows if r.get("error")]
    return text + ("\nfailed:\n" + "\n".join(errors) if errors else "")
