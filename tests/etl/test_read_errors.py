"""An input file Spark cannot read is the user's to fix: one `error:` line, exit 2."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import pytest

from pipeline.cli import main
from tests.etl.test_job import write_ml100k


def hadoop_crc(data: bytes) -> bytes:
    """Hadoop's `.<name>.crc` sidecar for `data`: magic, bytes per checksum, then the
    big-endian CRC-32 of each 512-byte chunk (ChecksumFileSystem's format)."""
    chunks = [data[i : i + 512] for i in range(0, len(data), 512)]
    return (
        b"crc\0"
        + struct.pack(">I", 512)
        + b"".join(struct.pack(">I", zlib.crc32(c)) for c in chunks)
    )


def test_stale_crc_beside_a_raw_file_is_one_line_and_exit_2(spark, tmp_path, capsys):
    src = tmp_path / "src"
    write_ml100k(src)
    ratings = src / "u.data"
    (src / ".u.data.crc").write_bytes(hadoop_crc(ratings.read_bytes()))
    cfg = tmp_path / "ml.yaml"
    cfg.write_text(
        f"dataset:\n  kind: movielens-100k\n  name: crc\n  path: {src}\n"
        f"paths:\n  data_root: {tmp_path / 'out'}\n"
    )
    # With the sidecar matching, the folder reads (so the sidecar is honoured at all).
    assert main(["etl", "--config", str(cfg), "--skip-features"]) == 0
    capsys.readouterr()

    # Edited after its .crc was written (same length: only the checksum can tell).
    ratings.write_bytes(ratings.read_bytes().replace(b"\t5\t", b"\t4\t", 1))
    assert main(["etl", "--config", str(cfg), "--skip-features"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err[:2000]
    assert err.startswith(f"error: cannot read file://{ratings}: ")
    assert f"{src}/.u.data.crc" in err
    assert "Py4J" not in err and "Traceback" not in err
    # The failed run published nothing and left no staging folder behind.
    assert sorted(p.name for p in (tmp_path / "out" / "crc").iterdir()) == ["clean"]


@pytest.mark.slow
def test_the_command_line_prints_no_java_stack_for_a_stale_crc(tmp_path):
    """What a user sees: Spark's start-up banner, then the one error line; the failed task's
    Java stack (logged by the executor and the scheduler in local mode) is not printed."""
    src = tmp_path / "src"
    write_ml100k(src)
    ratings = src / "u.data"
    (src / ".u.data.crc").write_bytes(hadoop_crc(ratings.read_bytes()))
    ratings.write_bytes(ratings.read_bytes().replace(b"\t5\t", b"\t4\t", 1))
    cfg = tmp_path / "ml.yaml"
    cfg.write_text(
        f"dataset:\n  kind: movielens-100k\n  name: crc\n  path: {src}\n"
        f"paths:\n  data_root: {tmp_path / 'out'}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "etl", "--config", str(cfg), "--skip-features"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot read file://{ratings}: ")
    assert not [ln for ln in lines if ln.lstrip().startswith("at ") or "Exception" in ln], (
        run.stderr[-3000:]
    )
