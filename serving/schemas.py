"""Request and response bodies of every endpoint (they make the OpenAPI schema complete)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "ErrorBody",
    "ItemsBody",
    "ItemsResponse",
    "LabelStatus",
    "LabelledModelStatus",
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


class LabelStatus(BaseModel):
    version: str | None = Field(description="the version the label points at (null: none)")
    source: str = Field(description="config (serving.models) or registry (an alias)")
    registry_version: str | None = Field(
        None, description="the model-registry version the alias of this name names"
    )
    error: str | None = Field(
        None, description="why the label did not follow its alias (null: it did)"
    )


class ModelStatus(BaseModel):
    model_version_status: list[VersionStatus]


class LabelledModelStatus(ModelStatus):
    """TF Serving's status plus the model's labels (TF Serving clients ignore the key)."""

    labels: dict[str, LabelStatus] | None = Field(
        None, description="every label of the model, by name (absent when it has none)"
    )


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
        None,
        description='{"history": [item ids, newest first]}: the history input of a model that '
        "reads one, instead of the online store's; any other key is a 400",
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
    """A room's state: its id, whether it is live (default true) and, for a room created
    after training, its content (category, tags, ...: any other field)."""

    model_config = ConfigDict(extra="allow")

    item_id: RawId
    live: StrictBool = True


class ItemsBody(_Body):
    items: list[NewItem] = Field(min_length=1)


class ItemsResponse(BaseModel):
    model: str
    version: int
    received: int
    indexed: int = Field(description="items added to the live index (not trained on)")
    offline: int = Field(0, description="items of the request now marked not live")


class EventsBody(_Body):
    events: list[Any] = Field(
        min_length=1,
        description="events in the raw log's format: {event_id, user_id, item_id, event, ts, "
        "watch_seconds, gift_value}, checked by the ETL's rules",
    )


class RejectedEvent(BaseModel):
    index: int
    field: str
    reason: str = Field(description="the ETL's quarantine reason, or future_timestamp")
    message: str


class EventsResponse(BaseModel):
    accepted: int
    new: int = Field(description="accepted events the store did not hold yet")
    stored: bool = Field(description="false: the store was down; the raw log holds them")
    rejected: list[RejectedEvent] = Field(default_factory=list)
    error: str | None = None
