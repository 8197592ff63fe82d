"""The floors of the code base (README "Code layout"): a floor never imports a higher one.

Each check imports every module of some packages in a fresh interpreter where the packages
above them cannot be imported at all, so a stray import anywhere (even a lazy one at module
level) fails here rather than in a deployment that ships only the lower floors.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import importlib, pkgutil, sys

blocked = {blocked!r}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{{name}} must not be imported here")
        return None

sys.meta_path.insert(0, Block())
for package in {packages!r}:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
print("ok")
"""


@pytest.mark.parametrize(
    ("packages", "blocked"),
    [
        # Services use the engine and the model repository, never the training stage.
        (["serving", "batch"], ["training", "pipeline", "etl", "features", "datagen"]),
        # The engine knows nothing of recommenders or of the pipeline's plumbing.
        (["engine"], ["peppercorn", "training", "serving", "batch", "pipeline", "etl"]),
        # The contracts floor loads the engine only when a version is opened or exported.
        (["peppercorn"], ["engine", "training", "serving", "batch", "pipeline", "etl"]),
        # Stages never import the orchestration or the services above them.
        (["training", "etl", "features", "datagen"], ["pipeline", "serving", "batch"]),
    ],
)
def test_a_floor_imports_without_the_floors_above(packages, blocked):
    code = _PROBE.format(packages=packages, blocked=set(blocked))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
