"""Request and response bodies of every endpoint (they make the OpenAPI schema complete)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

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


def _valid_unicode(value):
    # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 response, log line or
    # vocabulary lookup can carry.
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        raise ValueError(
            f"not valid Unicode: lone surrogate {ascii(char)} at position {exc.start}"
        ) from None
    return value


Text = Annotated[StrictStr, AfterValidator(_valid_unicode)]
RawId = Annotated[StrictInt | StrictStr, AfterValidator(_valid_unicode)]


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

    signature_name: Text = "serving_default"
    instances: list[Any] | None = None
    inputs: dict[str, Any] | list[Any] | None = None


class TFPredictResponse(BaseModel):
    predictions: Any = None
    outputs: Any = None


class ScoreBody(_Body):
    """Scores for one user and the given items, in request order."""

    model: Text | None = None
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
    model: Text | None = None
    user_id: RawId
    k: StrictInt = Field(10, ge=1)
    exclude_seen: StrictBool = True
    candidates: list[RawId] | None = None


class RecommendedItem(BaseModel):
    item_id: int | str
    score: float


class RecommendResponse(BaseModel):
    model: str
    version: int
    items: list[RecommendedItem]
    fallback: bool
