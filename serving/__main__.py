"""`python -m serving --config X [--host H] [--port P]`: run the model server with uvicorn."""

from __future__ import annotations

# One request is scored at a time per core: one BLAS thread (see peppercorn.blas).
from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from pydantic import ValidationError  # noqa: E402

from peppercorn.config import ConfigError, load_config  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("--config", required=True, help="pipeline YAML config")
    parser.add_argument("--host", help="address to listen on (overrides env and config)")
    parser.add_argument("--port", type=int, help="port to listen on (overrides env and config)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import uvicorn

    from serving.main import create_app
    from serving.settings import Settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = load_config(args.config)
        settings = Settings.from_config(cfg, host=args.host, port=args.port)
        # Builds the repository too: a URI whose filesystem cannot be opened stops here.
        app = create_app(settings)
    except (ConfigError, ValidationError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        loop="auto",
        http="auto",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
