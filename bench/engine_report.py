"""The engine benchmark's results table (engine.md) and its profile summary helpers."""

from __future__ import annotations

__all__ = ["markdown", "time_by_module"]


def time_by_module(stats) -> list[tuple[str, float]]:
    """Own (tottime) seconds summed per source file: which engine part costs what."""
    totals: dict[str, float] = {}
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():
        if filename == "~":
            name = func.split("'")[1] if "'" in func else func.split()[-1].strip("<>")
            key = f"C builtins ({name})"
        elif "engine/" in filename:
            key = "engine/" + filename.rsplit("engine/", 1)[1]
        elif "site-packages/numpy" in filename:
            key = "numpy (Python-level wrappers)"
        else:
            key = filename.rsplit("/", 1)[-1]
        totals[key] = totals.get(key, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _rate(stats: dict) -> str:
    return f"{stats['median']:,.0f} ({stats['min']:,.0f}-{stats['max']:,.0f})"


def _results_table(report: dict) -> list[str]:
    names = list(report["results"][0]["samples_per_sec"])
    lines = ["| batch | framework | samples/s median (min-max) | vs best peer | target | met |"]
    lines.append("|---|---|---|---|---|---|")
    for res in report["results"]:
        best = res.get("best_peer")
        for name in names:
            cells = [str(res["batch_size"]), name, _rate(res["samples_per_sec"][name])]
            ratio = res.get("ratio_vs_best_peer", {}).get(name)
            if ratio is None:
                cells.append("best peer" if name == best else "-")
            else:
                cells.append(f"{ratio:.2f}x")
            target = res.get("target_ratio")
            met = res.get("meets_target", {}).get(name)
            cells.append(f">= {target}x" if target is not None and met is not None else "-")
            cells.append({True: "yes", False: "NO"}.get(met, "-"))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict) -> str:
    """The results as a Markdown page: machine, optimizers, table, losses, load."""
    machine = report["machine"]
    lines = [
        "# Engine benchmark: NCF-MLP training throughput (samples/s)",
        "",
        f"Workload: {report['workload']}",
        f"Data: {report['data']}. Threads: {report['threads']} ({report['thread_control']}).",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} usable CPUs, "
        f"{machine['platform']}; Python {machine['python']}, numpy {machine['numpy']}, "
        f"torch {machine['torch']}, tensorflow {machine.get('tensorflow')}.",
        "Figures: median of repeats (min-max); repeats alternate the order of frameworks. "
        "`vs best peer`: an engine spelling's median over the fastest peer's median at that "
        "batch size (peers: PyTorch dense Adam, PyTorch sparse embeddings + SparseAdam, "
        "TensorFlow compat.v1).",
        "",
        "Spellings: `engine-fused` builds dense layers with `tf.fused_dense`; `engine-plain` "
        "is plain TF-1 code (`tf.matmul(h, W) + b`, `tf.nn.relu`) that the Session fuses "
        "when it compiles the training plan (engine/plan_fusion.py), as Grappler does.",
        "",
        "Optimizers:",
        "",
    ]
    lines += [f"- {name}: {what}" for name, what in report["optimizers"].items()]
    lines += [""] + _results_table(report)
    lines += ["", "First-step loss (same weights, same batch; must agree across frameworks):", ""]
    for res in report["results"]:
        losses = ", ".join(f"{k} {v:.6f}" for k, v in res["first_step_loss"].items())
        lines.append(f"- batch {res['batch_size']}: {losses}")
    lines += ["", "Steps timed per repeat (fewer than asked: the repeat hit its time cap):", ""]
    for res in report["results"]:
        runs = ", ".join(f"{k} {v}" for k, v in res["steps_run"].items())
        lines.append(f"- batch {res['batch_size']} (asked {res['timed_steps_per_repeat']}): {runs}")
    load_start = report.get("load_average_at_start")
    load = machine.get("load_average_1_5_15")
    if load:
        start = f" (at the start: {[round(x, 2) for x in load_start]})" if load_start else ""
        lines += [
            "",
            f"Load average at the end (1/5/15 min): {[round(x, 2) for x in load]}{start}.",
        ]
        cpus = machine.get("usable_cpus") or 1
        if load[0] > cpus:
            lines += [
                "",
                f"**Warning: load average {load[0]:.1f} on {cpus} CPUs: other processes shared "
                "the machine, so these figures (multi-threaded ones above all) are not "
                "representative. Re-run on a quiet machine.**",
            ]
    lines += ["", f"Whole run: {report.get('wall_seconds', 0):.0f} s."]
    return "\n".join(lines) + "\n"
