"""An input file Spark cannot read is the user's to fix: one `error:` line, exit 2."""

from __future__ import annotations

import struct
import zlib

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
