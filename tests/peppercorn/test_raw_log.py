"""peppercorn.raw_log: lines reach whole files under the folder, never a half-written one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from peppercorn.raw_log import SPOOL, RawLogWriter

ROOT = Path(__file__).resolve().parents[2]


def rolled(folder: Path) -> list[Path]:
    return sorted(folder.glob("online-*.jsonl"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def lines_of(files: list[Path]) -> list[str]:
    return [line for f in files for line in f.read_text("utf-8").splitlines()]


def test_lines_round_trip_into_one_file_on_close(tmp_path):
    lines = ['{"event_id": "e1"}', '{"user_id": "ユーザー😀"}', "plain"]
    with RawLogWriter(str(tmp_path / "events"), roll_s=3600) as log:
        log.append(lines[:2])
        log.append(lines[2:])
        log.append([])
        assert rolled(tmp_path / "events") == []  # still spooled
    files = rolled(tmp_path / "events")
    assert len(files) == 1 and files[0].read_bytes().endswith(b"\n")
    assert lines_of(files) == lines
    assert list((tmp_path / "events" / SPOOL).iterdir()) == []
    with pytest.raises(ValueError, match="closed"):
        log.append(["late"])


def test_rolls_every_roll_events_lines_and_every_roll_s_seconds(tmp_path):
    folder = tmp_path / "events"
    with RawLogWriter(str(folder), roll_s=3600, roll_events=3) as log:
        for i in range(7):
            log.append([f"line {i}"])
        assert [len(lines_of([f])) for f in rolled(folder)] == [3, 3]
    assert lines_of(rolled(folder)) == [f"line {i}" for i in range(7)]

    timed = tmp_path / "timed"
    with RawLogWriter(str(timed), roll_s=0.2) as log:
        log.append(["alone"])
        deadline = time.monotonic() + 5
        while not rolled(timed) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines_of(rolled(timed)) == ["alone"]  # no further append needed


def test_a_crashed_writers_spool_is_rolled_by_the_next_one_without_its_torn_line(tmp_path):
    folder = tmp_path / "events"
    crash = (
        "import os, sys; from peppercorn.raw_log import RawLogWriter; "
        "w = RawLogWriter(sys.argv[1], roll_s=3600); w.append(['a', 'b']); os._exit(1)"
    )
    done = subprocess.run([sys.executable, "-c", crash, str(folder)], cwd=ROOT, timeout=60)
    assert done.returncode == 1
    [spool] = (folder / SPOOL).iterdir()
    with spool.open("ab") as f:  # a write cut short by the crash
        f.write(b'{"torn": ')
    (folder / SPOOL / "empty.jsonl").write_bytes(b"")
    with RawLogWriter(str(folder)) as log:
        assert lines_of(log.recovered) == ["a", "b"]
    assert lines_of(rolled(folder)) == ["a", "b"]
    assert list((folder / SPOOL).iterdir()) == []


def test_a_live_writers_spool_is_left_to_it(tmp_path):
    folder = tmp_path / "events"
    first = RawLogWriter(str(folder), roll_s=3600)
    first.append(["mine"])
    with RawLogWriter(str(folder), roll_s=3600) as second:
        assert second.recovered == []
        second.append(["theirs"])
    first.append(["mine too"])
    first.close()
    assert sorted(lines_of(rolled(folder))) == ["mine", "mine too", "theirs"]


def test_concurrent_appends_lose_nothing(tmp_path):
    folder = tmp_path / "events"
    log = RawLogWriter(str(folder), roll_s=0.05, roll_events=97)

    def work(t: int) -> None:
        for i in range(100):
            log.append([f"{t}:{i}:{j}" for j in range(3)])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    got = lines_of(rolled(folder))
    assert sorted(got) == sorted(
        f"{t}:{i}:{j}" for t in range(6) for i in range(100) for j in range(3)
    )
    assert len(rolled(folder)) > 1


def test_spark_reads_the_rolled_files_and_not_the_spool(spark, tmp_path):
    folder = tmp_path / "events"
    log = RawLogWriter(str(folder), roll_s=3600)
    log.append(["rolled 1", "rolled 2"])
    log.roll()
    log.append(["spooled"])
    try:
        assert (folder / SPOOL).is_dir() and any((folder / SPOOL).iterdir())
        got = sorted(r.value for r in spark.read.text(str(folder)).collect())
        assert got == ["rolled 1", "rolled 2"]
    finally:
        log.close()


@pytest.mark.parametrize("uri", ["hdfs://namenode:8020/data/raw/events", "s3a://bucket/raw/events"])
def test_a_remote_folder_is_refused_by_name(uri):
    with pytest.raises(ValueError, match="the events API appends to a local raw log"):
        RawLogWriter(uri)


def test_a_file_uri_is_local_and_line_breaks_are_refused(tmp_path):
    with RawLogWriter(f"file://{tmp_path}/events") as log:
        assert log.folder == tmp_path / "events"
        with pytest.raises(ValueError, match="line break"):
            log.append(["one\ntwo"])
    assert os.listdir(tmp_path / "events") == [SPOOL]
