"""Request and response bodies of every endpoint (they make the OpenAPI schema complete)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "ErrorBody",
    "ItemsBody",
    "ItemsResponse",
    "NewItem",
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


_CONTENT = (
    'content of items the model may not know, by item id: {"r123": {"category": '
    '"gaming", "tags": ["fps"]}}; such an item is scored from it by the retrieval model'
)
_ARM = "force this experiment arm (QA); by default the user's arm by a stable hash of user_id"


class ScoreBody(_Body):
    """Scores for one user and the given items, in request order."""

    model: Text | None = None
    user_id: RawId
    item_ids: list[RawId] = Field(min_length=1)
    features: dict[str, Any] | None = Field(
        None, description="accepted for forward compatibility; profiles live in the model"
    )
    content: dict[Text, dict[str, Any]] | None = Field(None, description=_CONTENT)
    arm: Text | None = Field(None, description=_ARM)


PredictBody = ScoreBody


class ScoreResponse(BaseModel):
    model: str
    version: int
    scores: list[float | None] = Field(description="null for an item in unknown_items")
    user_known: bool
    unknown_items: list[int | str] = Field(
        default_factory=list, description="items neither the model nor any content describes"
    )
    arm: str | None = None


class RecommendBody(_Body):
    model: Text | None = None
    user_id: RawId
    k: StrictInt = Field(10, ge=1)
    exclude_seen: StrictBool = True
    candidates: list[RawId] | None = None
    content: dict[Text, dict[str, Any]] | None = Field(None, description=_CONTENT)
    debug: StrictBool = Field(False, description="add each stage's timings and counts")
    arm: Text | None = Field(None, description=_ARM)


class RecommendedItem(BaseModel):
    item_id: int | str
    score: float


class RecommendResponse(BaseModel):
    model: str
    version: int
    items: list[RecommendedItem]
    fallback: bool
    unknown_items: list[int | str] = Field(default_factory=list)
    arm: str | None = None
    retrieval: dict[str, Any] | None = Field(
        None, description="the retrieval version of a two-stage answer: {model, version}"
    )
    debug: dict[str, Any] | None = None


class NewItem(BaseModel):
    """An item created after training: its id and content (category, tags)."""

    model_config = ConfigDict(extra="allow")

    item_id: RawId


class ItemsBody(_Body):
    items: list[NewItem] = Field(min_length=1)


class ItemsResponse(BaseModel):
    model: str
    version: int
    received: int
    indexed: int = Field(description="items added to the live index (not trained on)")
