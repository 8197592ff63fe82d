"""The pure half of `bench.platform`: config derivation, parsing what each stage printed, the
table rows, the 10M -> 50M cost ratios and the Markdown page. No Spark, no subprocesses, so
tests/bench/test_platform.py runs it in milliseconds.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

__all__ = [
    "derive_config",
    "markdown",
    "parse_stage",
    "peak_between",
    "ratios",
    "size_rows",
    "train_phases",
    "tree_total",
]

# The targets (issue #15 item 2 and "Done when").
TARGET_ETL_EVENTS_PER_S = 100_000
TARGET_PEAK_GIB = 12
TARGET_CHAIN_MINUTES = 45


def derive_config(
    base: dict,
    events: int,
    root: Path,
    epochs: int = 1,
    users: int | None = None,
    items: int | None = None,
) -> dict:
    """`base` (a parsed YAML config) for one benchmark size: its event count, its own data root
    and model repository under `root` (sizes never share outputs), `epochs` and, for smoke
    runs, fewer users or items."""
    body = copy.deepcopy(base)
    synthetic = body.setdefault("dataset", {}).setdefault("synthetic", {})
    synthetic["events"] = int(events)
    if users is not None:
        synthetic["users"] = int(users)
    if items is not None:
        synthetic["items"] = int(items)
    paths = body.setdefault("paths", {})
    paths["data_root"] = str(root / "data")
    paths["model_repository"] = str(root / "models")
    body.setdefault("training", {})["epochs"] = int(epochs)
    return body


def tree_total(rss: dict[int, int], parents: dict[int, int]) -> int:
    """Sum of `rss` (by pid) over a process tree, leaving out a child whose RSS equals its
    parent's to the byte.

    Such a child is one the JVM is spawning (posix_spawn clones with CLONE_VM): until it
    execs it shares the parent's memory and reports the parent's RSS. Counting both doubled
    the features peak of a 200k-event smoke run (5.7 -> 11.5 GiB) for single samples.
    """
    return sum(v for pid, v in rss.items() if rss.get(parents.get(pid, -1)) != v)


def _json_block(lines: list[str], first: str = "{", last: str | None = "}") -> dict | None:
    # A command's JSON summary is printed with indent, so it opens with a lone "{" line.
    try:
        start = lines.index(first)
        stop = lines.index(last, start) + 1 if last else len(lines)
        return json.loads("\n".join(lines[start:stop]))
    except ValueError:  # no block, or not JSON (json.JSONDecodeError is a ValueError)
        return None


def _number(pattern: str, text: str, group: int = 1) -> float | None:
    match = re.search(pattern, text, re.M)
    return float(match.group(group)) if match else None


def parse_stage(stage: str, lines: list[str]) -> dict:
    """The figures a stage's command printed on stdout (missing ones are left out)."""
    text = "\n".join(lines)
    found: dict = {}
    if stage == "generate":
        found["events_generated"] = _number(r"^datagen: (\d+) events", text)
        found["inner_seconds"] = _number(r" in ([0-9.]+)s$", text)
    elif stage == "etl":
        found["events_read"] = _number(r"^events: read (\d+)", text)
        found["events_kept"] = _number(r"^events: read \d+, kept (\d+)", text)
        found["inner_seconds"] = _number(r"^etl: ([0-9.]+) s$", text)
        # raw() regenerates stale logs inside `etl`: then the ETL figure includes generation.
        found["regenerated_raw"] = "generating synthetic raw logs" in text
    elif stage == "features":
        summary = _json_block(lines, last=None) or {}
        found["inner_seconds"] = summary.get("seconds")
        found.update({k: v for k, v in summary.items() if isinstance(v, int)})
    elif stage == "train":
        found["metrics"] = _json_block(lines)
        found["export_seconds"] = _number(r"^export: ([0-9.]+) s$", text)
    return {k: v for k, v in found.items() if v is not None}


def peak_between(samples: list[list[float]], start: float, stop: float, slack: float) -> int:
    """Largest RSS (MiB) sampled in [start - slack, stop + slack]: a phase shorter than the
    sampling period still gets the samples on either side of it."""
    inside = [rss for t, rss in samples if start - slack <= t <= stop + slack]
    return int(max(inside)) if inside else 0


def train_phases(run: dict, interval: float) -> dict[str, dict]:
    """Split the train command's wall time into start-up + loading, the epochs, the evaluation
    and the export, from when its lines were printed and what they say.

    The last `epoch N:` line ends the epochs, which began `metrics.wall_seconds` before it
    (training loop, sampled validation, checkpoint); the `export: S s` line ends the export,
    which began S before it; the evaluation (best weights restored, sampled test metrics,
    full-catalogue ranking of model and popularity) lies between.
    """
    metrics = run.get("printed", {}).get("metrics") or {}
    lines = run.get("lines", [])
    epoch_ends = [t for t, line in lines if re.match(r"epoch \d+: loss", line)]
    export_at = [t for t, line in lines if re.match(r"export: [0-9.]+ s$", line)]
    export_s = run.get("printed", {}).get("export_seconds")
    if not (epoch_ends and export_at and export_s is not None and "wall_seconds" in metrics):
        return {}
    epoch_end, export_end = epoch_ends[-1], export_at[-1]
    epoch_start = max(0.0, epoch_end - metrics["wall_seconds"])
    export_start = max(epoch_end, export_end - export_s)
    spans = {
        "train: start-up + loading": (0.0, epoch_start),
        "train: epochs": (epoch_start, epoch_end),
        "train: evaluation": (epoch_end, export_start),
        "train: export": (export_start, export_end),
    }
    samples = run.get("samples", [])
    return {
        name: {"seconds": round(b - a, 2), "peak_rss_mb": peak_between(samples, a, b, interval)}
        for name, (a, b) in spans.items()
    }


def _row(name: str, seconds: float, peak: int, events: int, note: str = "") -> dict:
    return {
        "stage": name,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds) if seconds > 0 else None,
        "peak_rss_mb": int(peak),
        "note": note,
    }


def size_rows(size: dict, interval: float) -> list[dict]:
    """The table of one size: each measured process, the train command's phases, `make etl`'s
    equivalent (ETL + features) and the whole chain; throughput is raw events / wall s."""
    events, runs = size["events"], size["stages"]
    rows = []
    for name in ("generate", "etl", "features", "train"):
        run = runs.get(name)
        if run is None:
            continue
        note = "reused raw logs" if run.get("reused") else ""
        if run.get("printed", {}).get("regenerated_raw"):
            note = "raw logs were regenerated inside etl"
        rows.append(_row(name, run["seconds"], run["peak_rss_mb"], events, note))
        if name == "train":
            for phase, got in train_phases(run, interval).items():
                rows.append(_row(phase, got["seconds"], got["peak_rss_mb"], events))
    if "etl" in runs and "features" in runs:
        both = (runs["etl"], runs["features"])
        rows.append(_row("make etl (etl + features)", sum(r["seconds"] for r in both),
                         max(r["peak_rss_mb"] for r in both), events,
                         "two processes: one Spark start-up more than `make etl`"))  # fmt: skip
    measured = [runs[n] for n in ("generate", "etl", "features", "train") if n in runs]
    if len(measured) == 4:
        note = "generate -> export, as `make etl train` from nothing"
        if runs["generate"].get("reused"):
            note = "etl -> export only: the raw logs were reused"
        rows.append(_row("whole chain", sum(r["seconds"] for r in measured),
                         max(r["peak_rss_mb"] for r in measured), events, note))  # fmt: skip
    return rows


def ratios(sizes: list[dict]) -> list[dict]:
    """Wall-time and peak-RSS ratios of every stage from the smallest to the largest size;
    `linear` is the events ratio (cost growing linearly with events gives exactly that)."""
    done = sorted((s for s in sizes if s.get("rows")), key=lambda s: s["events"])
    if len(done) < 2:
        return []
    small, large = done[0], done[-1]
    by_stage = {r["stage"]: r for r in small["rows"]}
    out = []
    for row in large["rows"]:
        base = by_stage.get(row["stage"])
        if base is None or not base["seconds"]:
            continue
        out.append({
            "stage": row["stage"],
            "wall_ratio": round(row["seconds"] / base["seconds"], 2),
            "rss_ratio": round(row["peak_rss_mb"] / base["peak_rss_mb"], 2)
            if base["peak_rss_mb"] else None,
            "linear": round(large["events"] / small["events"], 2),
        })  # fmt: skip
    return out


def _gib(mb: int) -> str:
    return f"{mb / 1024:.2f}"


def _targets(size: dict) -> list[str]:
    rows = {r["stage"]: r for r in size.get("rows", [])}
    quality = size.get("quality", {})
    lines = []
    etl = rows.get("make etl (etl + features)")
    if etl and etl["events_per_s"]:
        met = "met" if etl["events_per_s"] >= TARGET_ETL_EVENTS_PER_S else "NOT met"
        lines.append(f"`make etl` {etl['events_per_s']:,} events/s (target >= "
                     f"{TARGET_ETL_EVENTS_PER_S:,}: {met})")  # fmt: skip
    chain = rows.get("whole chain")
    if chain:
        peak = chain["peak_rss_mb"] / 1024
        lines.append(f"peak RSS {peak:.2f} GiB (target <= {TARGET_PEAK_GIB}: "
                     f"{'met' if peak <= TARGET_PEAK_GIB else 'NOT met'})")  # fmt: skip
        minutes = chain["seconds"] / 60
        lines.append(f"whole chain {minutes:.1f} min (aim < {TARGET_CHAIN_MINUTES}: "
                     f"{'met' if minutes < TARGET_CHAIN_MINUTES else 'NOT met'})")  # fmt: skip
    model, popular = quality.get("full_recall@50"), quality.get("popularity_full_recall@50")
    if model is not None and popular is not None:
        lines.append(f"full-catalogue Recall@50 model {model:.4f} vs popularity {popular:.4f} "
                     f"({'beats' if model > popular else 'does NOT beat'} popularity)")  # fmt: skip
    return lines


def markdown(report: dict) -> str:
    """`platform.md`: machine and method, a table per size, the ratios, then notes."""
    m = report["machine"]
    lines = [
        "# Platform benchmark (`python -m bench.platform`, `make bench-platform`)",
        "",
        f"{report['date']}, commit `{report['git']['commit'][:12]}`"
        f"{' (uncommitted changes present)' if report['git'].get('dirty') else ''}; "
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM. Base config "
        f"`{report['config']}`{report['overrides']}, training.epochs {report['epochs']}.",
        "",
        "Each stage is a fresh `python -m pipeline ...` process (its own Spark start-up); "
        "wall s is that process end to end; events/s = raw events / wall s; peak RSS is the "
        "largest sum over the process tree (Python, JVM, PySpark workers), sampled every "
        f"{report['interval_s']} s. The train rows below `train` split that process by when "
        "it printed its epoch and export lines (bench/platform_report.py, `train_phases`).",
        "",
    ]
    for size in report["sizes"]:
        lines += [f"## {size['events']:,} events", ""]
        if size.get("error"):
            lines += [f"**Failed:** {size['error']}", ""]
        lines += ["| stage | wall s | events/s | peak RSS GiB | load avg before/after | note |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        loads = {n: r.get("load_average", "") for n, r in size["stages"].items()}
        for r in size.get("rows", []):
            load = loads.get(r["stage"], "")
            rate = f"{r['events_per_s']:,}" if r["events_per_s"] else ""
            wall, peak = f"{r['seconds']:.1f}", _gib(r["peak_rss_mb"])
            if not r["seconds"]:  # reused raw logs: nothing was run
                wall = peak = "-"
            lines.append(f"| {r['stage']} | {wall} | {rate} | {peak} | {load} | "
                         f"{r['note']} |")  # fmt: skip
        q = size.get("quality", {})
        if q:
            lines += [
                "",
                "Quality (test split): "
                + ", ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items()
                ),
            ]
        lines += [""] + [f"- {t}" for t in _targets(size)] + [""]
    found = report.get("ratios", [])
    if found:
        lines += [
            "## Cost ratios, smallest -> largest size",
            "",
            "| stage | wall ratio | peak RSS ratio | linear |",
            "|---|---|---|---|",
        ]
        for r in found:
            lines.append(f"| {r['stage']} | {r['wall_ratio']} | {r['rss_ratio']} | "
                         f"{r['linear']} |")  # fmt: skip
        lines.append("")
    lines += ["## Notes", ""] + [f"- {n}" for n in report.get("notes", [])]
    return "\n".join(lines) + "\n"
