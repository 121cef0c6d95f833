"""What each source sends, validated once at the boundary with pydantic.

The raw body is what the inbox keeps; these models are how the web process
checks it and how the worker reads it back. ``extra="allow"`` everywhere:
a new attribute a sender adds is kept, never refused.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Annotated, Any, Literal, NotRequired, Union, get_args
from urllib.parse import unquote_plus

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    FiniteFloat,
    Strict,
    StringConstraints,
    TypeAdapter,
    create_model,
    with_config,
)
from typing_extensions import TypedDict


class EventKind(enum.StrEnum):
    """Every kind of event the inbox can hold."""

    RUN_LAUNCHED = "run.launched"
    RUN_STARTED = "run.started"
    RUN_PROGRESS = "run.progress"
    RUN_FINISHED = "run.finished"
    RUN_FAILED = "run.failed"
    RUN_KILLED = "run.killed"
    RUN_CRASHED = "run.crashed"
    RUN_ATTACHMENT = "run.attachment"
    RUN_MOLECULES = "run.molecules"
    WANDB_AUTOMATION = "wandb.automation"
    S3_OBJECTS = "s3.objects"
    S3_TEST_EVENT = "s3.test_event"
    SNS_SUBSCRIPTION_CONFIRMATION = "sns.subscription_confirmation"
    SNS_UNSUBSCRIBE_CONFIRMATION = "sns.unsubscribe_confirmation"


# Run ids become S3 key segments and file names: letters, digits and . _ - : + = @ only.
RunId = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+=@-]*$")
]
Text = Annotated[str, StringConstraints(max_length=4096)]


def _iso_8601(value: Any) -> Any:
    # pydantic would also take Unix seconds, even as a string ("0"); the schema says date-time.
    if not isinstance(value, str) or value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be an ISO-8601 date-time string with a time zone")
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- the pipeline's own run events ------------------------------------------------------


class RunLaunchedData(Open):
    run_id: RunId
    config: dict[str, Any]
    wandb_run_id: Text | None = None
    wandb_entity: Text | None = None
    wandb_project: Text | None = None
    run_name: Text | None = None
    chain_of_custody_id: Text | None = None
    created_at: IsoTime | None = None


class RunStartedData(Open):
    run_id: RunId
    wandb_run_id: Text | None = None


class RunProgressData(Open):
    run_id: RunId
    step: int = Field(ge=0)
    metrics: dict[str, Any] = Field(default_factory=dict)


class RunEndedData(Open):
    run_id: RunId
    summary: dict[str, Any] | None = None
    status: Text | None = None


class RunCrashedData(Open):
    run_id: RunId
    error: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    error_log_s3_key: Text | None = None
    crash_report_s3_key: Text | None = None
    crash_analysis_s3_key: Text | None = None


class RunAttachmentData(Open):
    run_id: RunId
    conversation_s3_key: Text | None = None
    blog_url: Text | None = None


# A reward or a score: a JSON number, as the store takes it. A string of digits or a boolean,
# which pydantic converts, had the batch acknowledged here and then refused by the worker.
Score = Annotated[FiniteFloat, Strict()]


# A dict, not a model: a batch holds a thousand molecules, and building a model of each, only for
# the store to read its fields into dicts again, cost the worker more than the rest of the batch
# took once its SMILES were analysed (bench/RESULTS.md). Validated the same, field by field.
@with_config(ConfigDict(extra="allow"))
class Molecule(TypedDict):
    smiles: Annotated[str, StringConstraints(max_length=4096)]
    reward: NotRequired[Score | None]
    scores: NotRequired[dict[Annotated[str, StringConstraints(min_length=1, max_length=255)], Score | None]]


class RunMoleculesData(Open):
    run_id: RunId
    batch_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    step: int = Field(ge=0)
    molecules: list[Molecule]


class _PipelineEvent(Open):
    timestamp: IsoTime


class RunLaunched(_PipelineEvent):
    type: Literal["run.launched"]
    data: RunLaunchedData


class RunStarted(_PipelineEvent):
    type: Literal["run.started"]
    data: RunStartedData


class RunProgress(_PipelineEvent):
    type: Literal["run.progress"]
    data: RunProgressData


class RunEnded(_PipelineEvent):
    type: Literal["run.finished", "run.failed", "run.killed"]
    data: RunEndedData


class RunCrashed(_PipelineEvent):
    type: Literal["run.crashed"]
    data: RunCrashedData


class RunAttachment(_PipelineEvent):
    type: Literal["run.attachment"]
    data: RunAttachmentData


class RunMolecules(_PipelineEvent):
    type: Literal["run.molecules"]
    data: RunMoleculesData


class _StoredMoleculesData(RunMoleculesData):
    molecules: list[Any]


class StoredRunMolecules(RunMolecules):
    """A batch as the worker reads it back from the inbox: its molecules as JSON gives them.

    The web checked each molecule before storing the batch, and the store checks each again, a
    field at a time over the whole batch, as it records it (store/scaffolds.py). Checked a third
    time by pydantic, molecule by molecule, a batch of 1,000 took the worker 0.72 ms to read
    instead of 0.35 (bench/RESULTS.md).
    """

    data: _StoredMoleculesData


stored_run_molecules = TypeAdapter(StoredRunMolecules)


PipelineEvent = Annotated[
    RunLaunched | RunStarted | RunProgress | RunEnded | RunCrashed | RunAttachment | RunMolecules,
    Field(discriminator="type"),
]
pipeline_event = TypeAdapter(PipelineEvent)


class _UnbuiltObject(BaseModel):
    """Any JSON object: parsed and checked, its members never built into Python values."""

    model_config = ConfigDict(extra="ignore")


_DOCUMENTS: dict[object, object] = {dict[str, Any]: _UnbuiltObject, dict[str, Any] | None: _UnbuiltObject | None}


def _checked_only(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with its free-form documents (launch config, summary, metrics) left unbuilt."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if annotation in _DOCUMENTS:
            fields[name] = (_DOCUMENTS[annotation], field)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if (nested := _checked_only(annotation)) is not annotation:
                fields[name] = (nested, field)
    return create_model(model.__name__, __base__=model, **fields) if fields else model


# What the web process validates a pipeline event with: the same verdict as pipeline_event, for
# far fewer instructions. It keeps the raw body and drops the event, so building a launch config's
# hundreds of values, only to free them, was the largest part of acknowledging it
# (bench/RESULTS.md). The worker reads the event back with pipeline_event. The union is built at
# run time, from PipelineEvent's members, so no checker can take it for a type.
pipeline_event_check: TypeAdapter[BaseModel] = TypeAdapter(
    Annotated[  # type: ignore[arg-type]
        Union[tuple(_checked_only(model) for model in get_args(get_args(PipelineEvent)[0]))],  # noqa: UP007
        Field(discriminator="type"),
    ]
)


# --- W&B automation webhooks -------------------------------------------------------------


class WandbAutomation(Open):
    """The payload template the README asks users to paste into their W&B automation."""

    event_type: Text
    event_author: Text = ""
    entity_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    project_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]


# --- S3 notifications: SNS envelopes, EventBridge events, bare S3 events --------------------


class SnsEnvelope(Open):
    Type: Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
    MessageId: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    TopicArn: Text
    Message: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    Subject: str | None = None
    SubscribeURL: str | None = None
    Token: str | None = None
    UnsubscribeURL: str | None = None


class S3Bucket(Open):
    name: Text


class S3ObjectRef(Open):
    key: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    size: int | None = None
    eTag: str | None = None
    sequencer: str | None = None


class S3Entity(Open):
    bucket: S3Bucket
    object: S3ObjectRef


class S3Record(Open):
    eventName: Text
    eventTime: str | None = None
    s3: S3Entity


class S3Records(Open):
    Records: list[S3Record]


class S3TestEvent(Open):
    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


class EventBridgeObject(Open):
    key: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None


class EventBridgeDetail(Open):
    bucket: S3Bucket
    object: EventBridgeObject


class EventBridgeS3Event(Open):
    id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    source: Literal["aws.s3"]
    detail_type: Annotated[str, Field(alias="detail-type")]
    detail: EventBridgeDetail


s3_records = TypeAdapter(S3Records)


class S3ObjectEvent(BaseModel):
    """One object notification, whichever form it came in."""

    bucket: str
    key: str
    created: bool
    event_name: str
    sequencer: str | None = None
    etag: str | None = None
    size: int | None = None


class S3Objects(BaseModel):
    """The object notifications of one delivery."""

    objects: list[S3ObjectEvent]


class SubscriptionMessage(BaseModel):
    """A verified SNS (un)subscription confirmation."""

    envelope: SnsEnvelope


def objects_from_records(records: S3Records) -> S3Objects:
    """Normalise a bare S3 event; keys arrive form-encoded ("a b" as "a+b")."""
    return S3Objects(
        objects=[
            S3ObjectEvent(
                bucket=r.s3.bucket.name,
                key=unquote_plus(r.s3.object.key),
                created=r.eventName.removeprefix("s3:").startswith("ObjectCreated:"),
                event_name=r.eventName,
                sequencer=r.s3.object.sequencer,
                etag=r.s3.object.eTag,
                size=r.s3.object.size,
            )
            for r in records.Records
        ]
    )


def objects_from_eventbridge(event: EventBridgeS3Event) -> S3Objects:
    """Normalise an EventBridge S3 event; its key is decoded the same way as S3's."""
    obj = event.detail.object
    return S3Objects(
        objects=[
            S3ObjectEvent(
                bucket=event.detail.bucket.name,
                key=unquote_plus(obj.key),
                created=event.detail_type == "Object Created",
                event_name=event.detail_type,
                sequencer=obj.sequencer,
                etag=obj.etag,
                size=obj.size,
            )
        ]
    )


def records_dedupe_key(records: S3Records) -> str:
    """Hash what identifies a bare S3 event's records: bucket, key, sequencer or eTag."""
    identity = [
        [r.eventName, r.s3.bucket.name, r.s3.object.key, r.s3.object.sequencer or r.s3.object.eTag]
        for r in records.Records
    ]
    return "records:" + hashlib.sha256(json.dumps(identity).encode()).hexdigest()
