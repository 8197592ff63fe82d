"""The baseline: a bare FastAPI app with one endpoint returning a constant, served the same
way as the model server (one uvicorn worker, uvloop + httptools).

`python -m bench.serve_bare --port P`
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.post("/constant")
async def constant() -> dict[str, float]:
    return {"score": 0.5}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
