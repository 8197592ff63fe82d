"""SparkSession construction from the `spark` config section.

Local mode is the embedded default; a cluster is one `spark.master` away.
"""

from __future__ import annotations

import os
import sys

from peppercorn.config import SparkConfig
from peppercorn.java import ensure_java_home


def get_spark(cfg: SparkConfig, app_name: str | None = None):
    """Return a SparkSession configured from `cfg` (creating it if none is active)."""
    ensure_java_home()
    # Executors must run the same interpreter as the driver (the project's venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if cfg.master.startswith("local"):
        # Local mode stays on loopback: nothing is exposed on the machine's network.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(app_name or cfg.app_name)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.ui.enabled", str(cfg.ui).lower())
        # Progress bars interleave with the jobs' own summaries on the console.
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    for key, value in cfg.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if cfg.master.startswith("local"):
        _quiet_task_failures(spark)
    return spark


def _quiet_task_failures(spark) -> None:
    # In local mode the executor runs in the driver's JVM: a failed task's stack trace, logged
    # by the executor and again by the task scheduler, is the one the driver raises next, and
    # the CLI reports that in one line (80-odd lines of Java frames on every bad input file
    # otherwise). On a cluster they stay in the executors' logs, where they belong.
    jvm = spark.sparkContext._jvm
    off = jvm.org.apache.logging.log4j.Level.OFF
    for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, off)
