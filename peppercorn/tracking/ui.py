"""MLflow's tracking UI over a config's tracking store (`make tracking-ui`):

    python -m peppercorn.tracking.ui [--config C] [--host 127.0.0.1] [--port 5000]

resolves the config's store as training does (`TrackingTarget.from_config`: `tracking.uri`,
else `MLFLOW_TRACKING_URI`, else `<data root>/mlflow.db`) and runs `mlflow ui` on it with the
same registry and artifact root, so the UI shows exactly the runs and aliases training wrote.
A store that is a tracking server already has its UI (open its URL), and a SQLite store that
does not exist yet has nothing to show: both are exit 2 with a sentence saying so.

The UI is started with one worker and without MLflow's job runner (GenAI judges and trace
archival, seven background processes): a local read-mostly UI needs neither, and on a small
machine four workers each importing MLflow take most of a minute to answer.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from peppercorn.config import ConfigError, load_config
from peppercorn.tracking.store import TrackingTarget

__all__ = [
    "RunningUI",
    "TrackingUIError",
    "main",
    "mlflow_executable",
    "start_ui",
    "ui_command",
    "ui_environment",
]

DEFAULT_CONFIG = "configs/default.yaml"
# MLflow's job runner is off unless the caller's environment asks for it.
_UI_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class TrackingUIError(ValueError):
    """A store the UI cannot be started on; the message says why and what to do."""


def mlflow_executable() -> list[str]:
    """The `mlflow` command of this interpreter: the script next to `sys.executable` (a
    virtual environment's `bin/`), else `python -m mlflow`."""
    script = Path(sys.executable).parent / "mlflow"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "mlflow"]


def ui_command(target: TrackingTarget, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The `mlflow ui` command line showing `target`'s runs and registry; raises
    `TrackingUIError` for a tracking server (it is its own UI) or a SQLite store not
    created yet."""
    if target.uri.startswith(("http://", "https://")):
        raise TrackingUIError(
            f"the tracking store is the tracking server {target.uri} (tracking.uri or "
            f"MLFLOW_TRACKING_URI): its UI is that server, open {target.uri} in a browser"
        )
    sqlite = target.sqlite_file
    if sqlite is not None and not sqlite.is_file():
        raise TrackingUIError(
            f"no tracking store at {sqlite} yet: run make train first (a tracked run creates "
            "it), or point tracking.uri at an existing store"
        )
    command = [*mlflow_executable(), "ui", "--backend-store-uri", target.uri,
               "--registry-store-uri", target.registry_uri]  # fmt: skip
    if target.artifact_location:
        command += ["--default-artifact-root", target.artifact_location]
    return command + ["--host", host, "--port", str(port), "--workers", "1"]


def ui_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `mlflow ui` runs in: `base` (default: this process's) with MLflow's
    job runner off unless `base` sets it."""
    env = dict(os.environ if base is None else base)
    for name, value in _UI_ENV_DEFAULTS.items():
        env.setdefault(name, value)
    return env


@dataclass
class RunningUI:
    """An `mlflow ui` started by `start_ui`: its process (leader of its own process group),
    base URL and the seconds it took to answer."""

    process: subprocess.Popen
    url: str
    seconds: float

    def stop(self, grace_s: float = 15) -> None:
        """Stop the UI and the server process it started (its whole process group):
        SIGTERM, then SIGKILL for whatever is left after `grace_s`."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self.process.poll()  # reap the leader, else the group looks alive
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)
        self.process.poll()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_ui(target: TrackingTarget, log: Path, timeout_s: float = 180) -> RunningUI:
    """`mlflow ui` on `target` on a free local port, in its own process group (output to
    `log`), returned once `/health` answers; `RuntimeError` with the log when it exits or
    does not answer within `timeout_s`."""
    url = f"http://127.0.0.1:{free_port()}"
    command = ui_command(target, "127.0.0.1", int(url.rsplit(":", 1)[1]))
    began = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=ui_environment(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    running = RunningUI(proc, url, 0.0)
    while time.perf_counter() - began < timeout_s:
        if proc.poll() is not None:
            running.stop()
            raise RuntimeError(f"mlflow ui exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    running.seconds = time.perf_counter() - began
                    return running
        except OSError:
            pass
        time.sleep(0.25)
    running.stop()
    raise RuntimeError(f"mlflow ui did not answer in {timeout_s:.0f} s:\n{log.read_text()}")


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m peppercorn.tracking.ui",
        description="MLflow's tracking UI over the config's tracking store.",
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="pipeline config (YAML)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the UI (this process becomes `mlflow ui`); 2 with a message when it cannot."""
    args = _parser().parse_args(argv)
    try:
        if not 0 < args.port < 65536:
            raise TrackingUIError(f"--port {args.port}: a port is 1..65535")
        target = TrackingTarget.from_config(load_config(args.config))
        command = ui_command(target, args.host, args.port)
        if _port_taken(args.host, args.port):
            raise TrackingUIError(
                f"{args.host}:{args.port} is in use (another UI?): pass --port, e.g. "
                f"make tracking-ui PORT={args.port + 1}"
            )
    except (ConfigError, TrackingUIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic's ValidationError of a config value
        print(f"error: {args.config}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    url_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tracking UI of {target.uri} (experiment {target.experiment}) at "
          f"http://{url_host}:{args.port}/ (Ctrl-C stops it)", flush=True)  # fmt: skip
    # exec, not a child: Ctrl-C and a service manager's SIGTERM reach mlflow directly.
    os.execve(command[0], command, ui_environment())
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
