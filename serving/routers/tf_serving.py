"""TF Serving's REST API: model status, metadata and predict, at TF Serving's paths.

Every handler is a plain `def`: FastAPI runs it in its thread pool, off the event loop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from peppercorn.loaded_version import HISTORY_INPUT, LoadedVersion, SignatureSpec, TensorSpec
from serving import errors
from serving.dependencies import Manager, Metrics, Scoring, ServerSettings
from serving.manager import ModelManager
from serving.metrics import ServerMetrics
from serving.schemas import (
    ErrorBody,
    LabelledModelStatus,
    ModelMetadata,
    ModelStatus,
    TFPredictBody,
    TFPredictResponse,
)
from serving.signatures import tf_signature_def, to_array

__all__ = ["router"]

router = APIRouter(tags=["TF Serving"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 404, 413, 503)}


def _version(text: str) -> int:
    # isascii: str.isdigit accepts '²' and other digits int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise errors.bad_argument(f"version must be a non-negative integer, got {text!r}")
    return int(text)


# ---- status --------------------------------------------------------------------------
def _with_labels(status: dict, labels: dict) -> dict:
    # Only a model with labels gets the key: without, the body is TF Serving's own.
    return {**status, "labels": labels} if labels else status


@router.get(
    "/v1/models/{name}", response_model=LabelledModelStatus, responses=_ERRORS,
    response_model_exclude_unset=True,
)  # fmt: skip
def model_status(name: str, manager: Manager):
    status = {"model_version_status": manager.status(name)}
    return _with_labels(status, manager.labels(name))


@router.get("/v1/models/{name}/versions/{version}", response_model=ModelStatus, responses=_ERRORS)
def version_status(name: str, version: str, manager: Manager):
    return {"model_version_status": manager.status(name, version=_version(version))}


@router.get(
    "/v1/models/{name}/labels/{label}", response_model=LabelledModelStatus, responses=_ERRORS,
    response_model_exclude_unset=True,
)  # fmt: skip
def label_status(name: str, label: str, manager: Manager):
    status = {"model_version_status": manager.status(name, label=label)}
    return _with_labels(status, {k: v for k, v in manager.labels(name).items() if k == label})


# ---- metadata ------------------------------------------------------------------------
def _metadata(
    manager: ModelManager, name: str, version: int | None = None, label: str | None = None
):
    with manager.acquire(name, version, label) as served:
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
            "metadata": {"signature_def": {"signature_def": tf_signature_def(served.signatures)}},
        }


@router.get("/v1/models/{name}/metadata", response_model=ModelMetadata, responses=_ERRORS)
def model_metadata(name: str, manager: Manager):
    return _metadata(manager, name)


@router.get(
    "/v1/models/{name}/versions/{version}/metadata",
    response_model=ModelMetadata,
    responses=_ERRORS,
)
def version_metadata(name: str, version: str, manager: Manager):
    return _metadata(manager, name, version=_version(version))


@router.get(
    "/v1/models/{name}/labels/{label}/metadata", response_model=ModelMetadata, responses=_ERRORS
)
def label_metadata(name: str, label: str, manager: Manager):
    return _metadata(manager, name, label=label)


# ---- predict -------------------------------------------------------------------------
def _columns_from_instances(instances: list[Any], sig: SignatureSpec) -> dict[str, Any]:
    names = list(sig.inputs)
    if len(names) == 1 and not all(isinstance(row, dict) for row in instances):
        return {names[0]: instances}
    columns: dict[str, list] = {n: [] for n in names}
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or set(row) != set(names):
            raise errors.bad_argument(
                f"instances[{i}]: expected an object with exactly the inputs {sorted(names)}"
            )
        for n in names:
            columns[n].append(row[n])
    return columns


def _columns_from_inputs(inputs: dict | list, sig: SignatureSpec) -> dict[str, Any]:
    names = list(sig.inputs)
    if isinstance(inputs, list):
        if len(names) != 1:
            raise errors.bad_argument(f"inputs: expected an object with the inputs {names}")
        return {names[0]: inputs}
    if set(inputs) != set(names):
        raise errors.bad_argument(
            f"inputs: expected exactly the inputs {sorted(names)}, got {sorted(inputs)}"
        )
    return inputs


def _accepted(name: str, spec: TensorSpec) -> TensorSpec:
    # A history of any width is taken: the version keeps its newest L items or pads it.
    return TensorSpec(spec.dtype, (-1, -1)) if name == HISTORY_INPUT else spec


def _predict(
    body: TFPredictBody, served: LoadedVersion, max_instances: int, metrics: ServerMetrics
) -> JSONResponse:
    sig = served.signatures.get(body.signature_name)
    if sig is None:
        raise errors.bad_argument(
            f'Serving signature name: "{body.signature_name}" not found in signature def'
        )
    if (body.instances is None) == (body.inputs is None):
        raise errors.bad_argument("the body needs exactly one of 'instances' or 'inputs'")
    row_format = body.instances is not None
    if row_format and len(body.instances) > max_instances:
        raise errors.too_large("instances", len(body.instances), max_instances)
    if row_format:
        columns = _columns_from_instances(body.instances, sig)
    else:
        columns = _columns_from_inputs(body.inputs, sig)
    try:
        arrays = {n: to_array(n, columns[n], _accepted(n, sig.inputs[n])) for n in sig.inputs}
    except ValueError as exc:
        raise errors.bad_argument(str(exc)) from None
    batch = {a.shape[0] for a in arrays.values() if a.ndim}
    if len(batch) > 1:
        raise errors.bad_argument(f"inputs have different batch sizes: {sorted(batch)}")
    n = batch.pop() if batch else 1
    if n > max_instances:
        raise errors.too_large("batch", n, max_instances)
    metrics.batch_size.labels("tf_predict").observe(n)
    try:
        out = served.predict(body.signature_name, arrays)
    except ValueError as exc:
        raise errors.bad_argument(str(exc)) from None
    names = list(out)
    if row_format:
        if len(names) == 1:
            return JSONResponse({"predictions": out[names[0]].tolist()})
        cols = [out[k].tolist() for k in names]
        rows = [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]
        return JSONResponse({"predictions": rows})
    if len(names) == 1:
        return JSONResponse({"outputs": out[names[0]].tolist()})
    return JSONResponse({"outputs": {k: v.tolist() for k, v in out.items()}})


@router.post("/v1/models/{name}:predict", response_model=TFPredictResponse, responses=_ERRORS)
def predict(
    name: str,
    body: TFPredictBody,
    manager: Manager,
    settings: ServerSettings,
    metrics: Metrics,
    scoring: Scoring,
):
    with scoring, manager.acquire(name) as served:
        return _predict(body, served, settings.max_instances, metrics)


@router.post(
    "/v1/models/{name}/versions/{version}:predict",
    response_model=TFPredictResponse,
    responses=_ERRORS,
)
def version_predict(
    name: str,
    version: str,
    body: TFPredictBody,
    manager: Manager,
    settings: ServerSettings,
    metrics: Metrics,
    scoring: Scoring,
):
    with scoring, manager.acquire(name, version=_version(version)) as served:
        return _predict(body, served, settings.max_instances, metrics)


@router.post(
    "/v1/models/{name}/labels/{label}:predict", response_model=TFPredictResponse, responses=_ERRORS
)
def label_predict(
    name: str,
    label: str,
    body: TFPredictBody,
    manager: Manager,
    settings: ServerSettings,
    metrics: Metrics,
    scoring: Scoring,
):
    with scoring, manager.acquire(name, label=label) as served:
        return _predict(body, served, settings.max_instances, metrics)
