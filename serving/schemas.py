"""Request and response bodies of every endpoint (they make the OpenAPI schema complete)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

__all__ = [
    "ErrorBody",
    "ModelMetadata",
    "ModelStatus",
    "PredictBody",
    "RecommendBody",
    "RecommendResponse",
    "RecommendedItem",
    "ScoreBody",
    "ScoreResponse",
    "TFPredictBody",
    "TFPredictResponse",
    "VersionStatus",
]

RawId = StrictInt | StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str


class StatusDetail(BaseModel):
    error_code: str
    error_message: str


class VersionStatus(BaseModel):
    version: str
    state: str = Field(description="START, LOADING, AVAILABLE, UNLOADING or END")
    status: StatusDetail


class ModelStatus(BaseModel):
    model_version_status: list[VersionStatus]


class ModelSpec(BaseModel):
    name: str
    signature_name: str = ""
    version: str | None = None


class ModelMetadata(BaseModel):
    model_spec: ModelSpec
    metadata: dict[str, Any] = Field(
        description='{"signature_def": {"signature_def": {name: {inputs, outputs, method_name}}}}'
    )


class TFPredictBody(_Body):
    """TF Serving's predict request: `instances` (row format) or `inputs` (columnar)."""

    signature_name: str = "serving_default"
    instances: list[Any] | None = None
    inputs: dict[str, Any] | list[Any] | None = None


class TFPredictResponse(BaseModel):
    predictions: Any = None
    outputs: Any = None


class ScoreBody(_Body):
    """Scores for one user and the given items, in request order."""

    model: StrictStr | None = None
    user_id: RawId
    item_ids: list[RawId] = Field(min_length=1)
    features: dict[str, Any] | None = Field(
        None, description="accepted for forward compatibility; profiles live in the model"
    )


PredictBody = ScoreBody


class ScoreResponse(BaseModel):
    model: str
    version: int
    scores: list[float]
    user_known: bool


class RecommendBody(_Body):
    model: StrictStr | None = None
    user_id: RawId
    k: StrictInt = Field(10, ge=1)
    exclude_seen: bool = True
    candidates: list[RawId] | None = None


class RecommendedItem(BaseModel):
    item_id: int | str
    score: float


class RecommendResponse(BaseModel):
    model: str
    version: int
    items: list[RecommendedItem]
    fallback: bool
