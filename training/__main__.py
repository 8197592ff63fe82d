"""`python -m training --config X [--resume] [--epochs N] [--model NAME]`.

Trains the configured model on the features stage's datasets, writes the report and exports
a servable version to `<paths.model_repository>/<model>/<version>/`. With
`training.distributed.workers` > 1 the training runs as a Spark barrier stage on the
configured `spark.master` (docs/distributed.md); evaluation and export stay here. Problems
the user can fix (missing dataset, bad config) end with one line on stderr and exit status 2.
"""

from __future__ import annotations

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads: see peppercorn.blas

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from peppercorn.config import Config, ConfigError, load_config  # noqa: E402
from training.data import DatasetError, open_dataset  # noqa: E402
from training.distributed.collective import DistributedError  # noqa: E402

__all__ = ["main", "run"]


def _local(uri: str, what: str) -> Path:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if "://" in uri:
        raise ValueError(f"{what} {uri!r}: training writes checkpoints and exports locally; "
                         "give a local path or file:// URI")  # fmt: skip
    return Path(uri)


def run(cfg: Config, resume: bool = False, epochs: int | None = None, model: str | None = None,
        progress: bool = True) -> tuple[Path, dict]:  # fmt: skip
    """Train and export; returns (version directory, metrics)."""
    from training.export import export_model
    from training.models import resolve_params
    from training.report import write_report
    from training.trainer import Trainer

    name = model or cfg.model.name
    params = resolve_params(name, cfg.model.params if name == cfg.model.name else {})
    repository = _local(cfg.paths.model_repository, "paths.model_repository")
    root = cfg.dataset_root()
    checkpoints = (
        _local(root, "dataset root") / "checkpoints" / name
        if "://" not in root or root.startswith("file://")
        else Path(".checkpoints") / cfg.dataset.name / name
    )
    if cfg.training.distributed.workers > 1:
        from training.distributed import train_distributed

        trainer, result = train_distributed(
            cfg, name, params, checkpoints, epochs, resume, progress
        )
        dataset = trainer.dataset
    else:
        dataset = open_dataset(root)
        trainer = Trainer(dataset, cfg.training, name, params, checkpoints, progress=progress)
        result = trainer.fit(epochs=epochs, resume=resume)
    with tempfile.TemporaryDirectory(prefix="peppercorn-report-") as tmp:
        report = Path(tmp)
        write_report(report, name, params, result.history, result.metrics, result.baseline)
        path = export_model(result, dataset, trainer.seen, repository, name, report)
    return path, result.metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="pipeline YAML config")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--epochs", type=int, help="total epochs (overrides training.epochs)")
    parser.add_argument("--model", help="model name (overrides model.name)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        print("error: --epochs must be at least 1", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        path, metrics = run(cfg, args.resume, args.epochs, args.model)
    except (ConfigError, DatasetError, DistributedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    print(json.dumps(shown, indent=1))
    print(f"exported {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
