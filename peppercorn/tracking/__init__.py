"""Experiment tracking and the model registry, in MLflow.

- `store`: where runs go (`TrackingTarget.from_config`: the config's `tracking` section, the
  environment, or a SQLite store under the data root) and the one `MlflowClient` factory;
- `runs`: `RunTracker`, the one writer of a run (config, parameters, dataset, per-epoch and
  final metrics, report, exported version), and `read_runs`, the one reader;
- `registry`: registering an exported version, setting an alias, and reading which
  repository version each alias names (the server's TF Serving labels follow them);
- `names`: metric names as MLflow accepts them (`test/hr_at_10` for `hr@10`) and back.

MLflow is imported only when a run or the registry is used: tracking that is off costs nothing,
and a store that cannot be reached is warned about once and then left alone.
"""

from peppercorn.tracking.store import TrackingTarget, tracking_disabled_by_env

__all__ = ["TrackingTarget", "tracking_disabled_by_env"]
