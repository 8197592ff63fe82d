"""The tracking UI in headless Chromium: screenshots of the runs, a run, curves and the registry.

    python -m bench.tracking_ui [--config configs/default.yaml] [--fresh] [--out bench/results]

(`make bench-tracking-ui`). Shows the config's tracking store when it has runs (read only:
nothing is written to it), else (or with `--fresh`) a store of its own in a temporary folder:
three gmf runs on a small synthetic dataset with learning rates 0.003, 0.01 and 0.03, their
exports registered, aliases `stable` and `canary` on two of them. It starts `mlflow ui` on
that store (`peppercorn.tracking.ui.ui_command`, a free port), drives Debian's Chromium with
Playwright and saves `tracking_ui/*.png` and `tracking_ui.md` under `--out`
(`tracking_ui_fresh*` for a store of its own); the UI is stopped at the end whatever happens.

Each page is captured once its content is on screen (a run's name, a metric's column header,
a chart's drawn lines, an alias), never after a fixed sleep. MLflow 3 opens on its GenAI
pages with an assistant panel: the browser's local storage is seeded before the UI loads so
it opens on "Model training", the panel closed, and the runs table showing metric and
parameter columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from peppercorn.config import load_config
from peppercorn.tracking.store import TrackingTarget
from peppercorn.tracking.ui import start_ui

__all__ = ["Shown", "capture", "fresh_store", "main", "pick_store"]

RESULTS = Path(__file__).resolve().parent / "results"
CHROMIUM = "/usr/bin/chromium"
# The closed network refuses Chromium's background connections: switch them off.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 1000}
LEARNING_RATES = (0.003, 0.01, 0.03)
# The runs table's columns: what tells runs apart (model, learning rate) and what they scored.
COLUMNS = [
    "params.`model.name`", "params.`training.learning_rate`", "metrics.`test/hr_at_10`",
    "metrics.`test/ndcg_at_10`", "metrics.`best_val/ndcg_at_10`", "metrics.`run/epochs`",
]  # fmt: skip
PAGE_TIMEOUT_MS = 120_000  # a first page on a loaded 2-core machine takes tens of seconds


@dataclass
class Shown:
    """What the screenshots show: the store, one experiment, its runs, a registered model."""

    target: TrackingTarget
    experiment_id: str
    experiment: str
    run_ids: list[str]
    run_names: list[str]
    model: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    fresh: bool = False


def _config_yaml(root: Path, lr: float) -> Path:
    import yaml

    cfg = {
        "dataset": {"kind": "synthetic", "name": "tracking-ui-demo"},
        "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
        "model": {"name": "gmf", "params": {"factors": 8}},
        "training": {"epochs": 8, "batch_size": 64, "learning_rate": lr,
                     "early_stopping_patience": 8},
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}",
                     "artifact_location": (root / "mlartifacts").as_uri()},
    }  # fmt: skip
    path = root / f"gmf-lr{lr}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def fresh_store(root: Path) -> Shown:
    """Three small tracked gmf runs in `root` (one per learning rate), their exports
    registered, `stable` on the middle one and `canary` on the last."""
    from peppercorn.tracking.registry import set_alias
    from pipeline.stages import train_and_export
    from training.data.synthetic import write_synthetic_dataset

    os.environ.pop("PEPPERCORN_TRACKING", None)  # this store is the point: track it
    write_synthetic_dataset(root / "data" / "tracking-ui-demo", users=120, items=100,
                            per_user=14, eval_negatives=40)  # fmt: skip
    versions = []
    for lr in LEARNING_RATES:
        cfg = load_config(_config_yaml(root, lr))
        version, metrics = train_and_export(cfg, source="bench.tracking_ui")
        versions.append(version)
        print(f"  gmf lr={lr}: HR@10 {metrics['hr@10']:.3f}, version {version.version}")
    target = TrackingTarget.from_config(cfg)
    client = target.client()
    experiment_id = target.experiment_id(client)
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"])
    for run, lr in zip(runs, LEARNING_RATES, strict=True):  # names that tell the runs apart
        client.update_run(run.info.run_id, name=f"gmf lr={lr}")
    aliases = {}
    for alias, version in (("stable", versions[1]), ("canary", versions[2])):
        aliases[alias] = set_alias(client, "gmf", alias, version.version, version.repository.uri)
    return Shown(target, experiment_id, target.experiment,
                 [r.info.run_id for r in runs][::-1],
                 [f"gmf lr={lr}" for lr in LEARNING_RATES][::-1],
                 "gmf", aliases, fresh=True)  # fmt: skip


def pick_store(config: str) -> Shown | None:
    """The experiment of `config`'s store with the newest run (the config's own experiment
    first), and its registered model with the most aliases; None when the store is not a
    SQLite file with runs. Reads only."""
    target = TrackingTarget.from_config(load_config(config))
    if target.sqlite_file is None or not target.sqlite_file.is_file():
        return None
    client = target.client()
    found = {e.experiment_id: e.name for e in client.search_experiments()}
    newest: dict[str, tuple[int, list]] = {}
    for experiment_id in found:
        runs = client.search_runs(
            [experiment_id],
            "attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        if runs:
            newest[experiment_id] = (runs[0].info.start_time, runs)
    if not newest:
        return None
    own = [i for i in newest if found[i] == target.experiment]
    experiment_id = own[0] if own else max(newest, key=lambda i: newest[i][0])
    runs = newest[experiment_id][1]
    # The model these runs registered (the one with most aliases), else any registered one.
    models = list(client.search_registered_models())
    ours = {mv.name for mv in client.search_model_versions(max_results=10_000)
            if mv.run_id in {r.info.run_id for r in runs}}  # fmt: skip
    model = max(models, key=lambda m: (m.name in ours, len(m.aliases or {}),
                                       m.last_updated_timestamp or 0), default=None)  # fmt: skip
    return Shown(
        target, experiment_id, found[experiment_id], [r.info.run_id for r in runs],
        [r.info.run_name or r.info.run_id for r in runs], model.name if model else None,
        {a: str(v) for a, v in (model.aliases or {}).items()} if model else {},
    )  # fmt: skip


def _seed_storage(shown: Shown) -> str:
    """A script run before the UI loads: MLflow's own local-storage keys (MLflow 3.17) for
    the workflow ("Model training"), the assistant panel (closed) and the runs table's
    columns. An unknown key is ignored, so a newer MLflow only shows its defaults."""
    table = {"selectedColumns": COLUMNS, "runsHiddenMode": "SHOW_ALL"}
    seeds = {
        "mlflow.workflowType_v1": json.dumps("machine_learning"),
        "mlflow.assistant.panelOpen_v1": "false",
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
        f'MLflowLocalStorage-1.1-ExperimentPage-["{shown.experiment_id}"]-ReactComponentState':
            json.dumps(table),
    }  # fmt: skip
    return "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});\n"
                   for k, v in seeds.items())  # fmt: skip


_SECTION = '[data-testid="experiment-view-compare-runs-section-header"]'
_COLLAPSE_ALL_BUT = f"""keep => {{
  for (const h of document.querySelectorAll('{_SECTION}')) {{
    const name = h.innerText.trim().split('\\n')[0].trim();  // 'val\\n(3)\\nAdd chart'
    const button = h.closest('[aria-expanded]');
    if (button && !keep.includes(name) && button.getAttribute('aria-expanded') === 'true')
      button.click();
  }}
}}"""
_SCROLL_TO_TOP = f"""name => {{
  for (const h of document.querySelectorAll('{_SECTION}'))
    if (h.innerText.trim().split('\\n')[0].trim() === name) h.scrollIntoView({{block: 'start'}});
}}"""
_CARD = "xpath=ancestor::div[contains(@class, 'react-resizable')]"  # a chart's card


def capture(shown: Shown, base: str, folder: Path) -> tuple[list[dict], str]:
    """The screenshots, each taken once its content is on screen: [{file, what, url,
    seconds, bytes}], and Chromium's version."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    experiment = f"{base}/#/experiments/{shown.experiment_id}"
    run_id, run_name = shown.run_ids[0], shown.run_names[0]
    shots: list[dict] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        version = browser.version
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(_seed_storage(shown))
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = context.new_page()

        def visible(text, exact: bool = True) -> None:
            page.get_by_text(text, exact=exact).first.wait_for()

        def chart_drawn(metric: str) -> None:
            card = page.locator(f'h4[title="{metric}"]').first.locator(_CARD)
            card.locator(".scatterlayer path.js-line").first.wait_for()

        def table_ready() -> None:
            visible(run_name)
            visible("test/hr_at_10")

        def run_ready() -> None:
            page.get_by_role("heading", name=run_name).first.wait_for()
            visible("test/ndcg_at_10")
            visible("Parameters (", exact=False)

        def charts_ready() -> None:
            # A chart is drawn only once scrolled to: fold the sections above train/ and
            # val/ and bring train/ to the top (the taller viewport holds both rows).
            page.locator(_SECTION).filter(has_text="val").first.wait_for()
            page.evaluate(_COLLAPSE_ALL_BUT, ["train", "val"])
            page.evaluate(_SCROLL_TO_TOP, "train")
            chart_drawn("train/loss")
            chart_drawn("val/ndcg_at_10")

        def model_ready() -> None:
            visible(re.compile(r"^Version \d+$"))
            for alias in shown.aliases:
                visible(f"@ {alias}", exact=False)

        aliases = ", ".join(f"`{a}` on version {v}" for a, v in shown.aliases.items())
        pages = [
            ("01-runs-table", f"the runs of experiment `{shown.experiment}`, newest first, with "
             "their model, learning rate and test/validation metrics",
             f"{experiment}/runs?compareRunsMode=TABLE", table_ready, VIEWPORT["height"]),
            ("02-run", f"one run (`{run_name}`): its metrics, tags, dataset, source commit and "
             "registered model version", f"{experiment}/runs/{run_id}", run_ready,
             VIEWPORT["height"]),
            ("03-curves", "per-epoch curves of every run (train/loss, val/ndcg_at_10, "
             "val/hr_at_10, ...), one colour per run; the other metric sections folded",
             f"{experiment}/runs?compareRunsMode=CHART", charts_ready, 1250),
        ]  # fmt: skip
        if shown.model is not None:
            what = (f"registered model `{shown.model}`: its versions with the Peppercorn "
                    f"version tags, and aliases ({aliases or 'none set'})")  # fmt: skip
            pages.append(("04-registry", what, f"{base}/#/models/{shown.model}", model_ready,
                          VIEWPORT["height"]))  # fmt: skip
        try:
            for name, what, url, ready, height in pages:
                began = time.perf_counter()
                page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
                page.goto(url, wait_until="domcontentloaded")
                try:
                    ready()
                except Exception:  # what the page showed instead, for the error report
                    page.screenshot(path=str(folder / f"{name}-failed.png"))
                    raise
                page.wait_for_timeout(500)  # let the last fade-in animation end
                path = folder / f"{name}.png"
                page.screenshot(path=str(path))
                seconds, size = time.perf_counter() - began, path.stat().st_size
                shots.append({"file": path.name, "what": what, "url": url.removeprefix(base),
                              "seconds": round(seconds, 1), "bytes": size})  # fmt: skip
                print(f"  {path.name}: {seconds:.1f} s, {size // 1024} KB", flush=True)
        finally:
            browser.close()
    return shots, version


def _markdown(shown: Shown, shots: list[dict], started_s: float, chromium: str, stem: str) -> str:
    from importlib.metadata import version

    import mlflow

    where = shown.target.sqlite_file
    if where is not None and where.is_relative_to(Path.cwd()):  # no machine's own path
        where = where.relative_to(Path.cwd())
    store = f"the config's store `{where or shown.target.uri}` (read only)"
    if shown.fresh:
        store = ("a fresh store in a temporary folder: three gmf runs, 8 epochs each, on a "
                 "synthetic dataset of 120 users x 100 items (`--fresh`, or the config's store "
                 "had no runs)")  # fmt: skip
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        "# The tracking UI in headless Chromium (`make bench-tracking-ui`)\n",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}; MLflow {mlflow.__version__} "
        f"(`mlflow ui --workers 1`), Chromium {chromium} driven by Playwright "
        f"{version('playwright')}, viewport {VIEWPORT['width']} px wide.\n",
        f"Store: {store}. Experiment `{shown.experiment}`, {len(shown.run_ids)} finished runs. "
        f"The UI answered its health check {started_s:.1f} s after `mlflow ui` started. Each "
        "page was captured once its content was on screen (the run's name, a metric column, "
        "drawn chart lines, the aliases), not after a fixed wait.\n",
        "| screenshot | what it shows | page | seconds to content |",
        "|---|---|---|---|",
    ]
    lines += [f"| [{s['file']}]({stem}/{s['file']}) | {s['what']} | `{s['url']}` | "
              f"{s['seconds']} |" for s in shots]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Pick or make a store, start its UI, take the screenshots, stop the UI; 2 without
    Chromium."""
    parser = argparse.ArgumentParser(prog="python -m bench.tracking_ui",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    parser.add_argument("--config", default="configs/default.yaml",
                        help="show this config's tracking store when it has runs")  # fmt: skip
    parser.add_argument("--fresh", action="store_true",
                        help="always train three small runs into a temporary store")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"error: {CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="peppercorn-tracking-ui-") as tmp:
        shown = None if args.fresh else pick_store(args.config)
        if shown is None:
            print("training three small runs into a temporary store ...", flush=True)
            shown = fresh_store(Path(tmp))
        print(f"store {shown.target.uri}, experiment {shown.experiment} "
              f"({len(shown.run_ids)} runs)", flush=True)  # fmt: skip
        ui = start_ui(shown.target, Path(tmp) / "mlflow-ui.log")
        try:
            print(f"mlflow ui at {ui.url} after {ui.seconds:.1f} s", flush=True)
            stem = "tracking_ui_fresh" if shown.fresh else "tracking_ui"
            shots, chromium = capture(shown, ui.url, args.out / stem)
        finally:
            ui.stop()
    report = args.out / f"{stem}.md"
    report.write_text(_markdown(shown, shots, ui.seconds, chromium, stem))
    print(f"wrote {report} and {len(shots)} screenshots", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
