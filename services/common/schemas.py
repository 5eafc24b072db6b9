"""JSON Schemas and the AsyncAPI document, generated from ``contracts`` (``rectify schemas``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, create_model

from services.common import contracts as c
from services.common.topics import (
    ALL_TOPICS,
    CASE_EVENTS,
    COMMANDS,
    DEAD_LETTERS,
    OUTCOMES,
    PUBLIC_CASES,
    RANKINGS,
    TopicSpec,
)

TOPIC_OF: dict[type[c.Message], TopicSpec] = {
    c.Command: COMMANDS,
    c.CaseEvent: CASE_EVENTS,
    c.SubmissionOutcome: OUTCOMES,
    c.PublicFact: PUBLIC_CASES,
    c.RankingFact: RANKINGS,
}


def topic_of(cls: type[c.Message]) -> TopicSpec:
    for base, spec in TOPIC_OF.items():
        if issubclass(cls, base):
            return spec
    raise ValueError(f"{cls.__name__} has no topic")


def wire_model(cls: type[c.Message]) -> type[BaseModel]:
    """The message as it travels: its envelope, with the type and version fixed and the payload typed."""
    is_command = issubclass(cls, c.Command)
    base = c.CommandEnvelope if is_command else c.EventEnvelope
    type_key = "command_type" if is_command else "event_type"
    fields: dict[str, Any] = {
        type_key: (Literal[cls.message_type], ...),  # type: ignore[valid-type]
        "schema_version": (Literal[cls.schema_version], ...),  # type: ignore[valid-type]
        "payload": (cls, ...),
    }
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{cls.message_type}V{cls.schema_version}", __base__=base, __doc__=cls.__doc__ or base.__doc__, **fields
    )
    return model


def schema_name(cls: type[c.Message]) -> str:
    return f"{cls.message_type}.v{cls.schema_version}"


def json_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for cls in c.MESSAGE_CLASSES:
        schema = wire_model(cls).model_json_schema()
        schema["$id"] = f"https://rectify.example/schemas/events/{schema_name(cls)}.json"
        schema["x-topic"] = topic_of(cls).name
        out[schema_name(cls)] = schema
    return out


def asyncapi() -> dict[str, Any]:
    schemas = json_schemas()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in ALL_TOPICS:
        on_topic = [cls for cls in c.MESSAGE_CLASSES if spec is not DEAD_LETTERS and topic_of(cls) is spec]
        channel_id = spec.name.replace(".", "_")
        channel_messages = {}
        for cls in on_topic:
            name = schema_name(cls).replace(".", "_")
            messages[name] = {
                "name": cls.message_type,
                "title": f"{cls.message_type} v{cls.schema_version}",
                "summary": (cls.__doc__ or "").strip().split("\n")[0] or cls.message_type,
                "contentType": "application/json",
                "payload": {"$ref": f"./events/{schema_name(cls)}.json"},
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        if spec is DEAD_LETTERS:
            messages["DeadLetter"] = {
                "name": "DeadLetter",
                "summary": "The original bytes of a message no consumer could process; the reason is in headers",
                "contentType": "application/octet-stream",
                "headers": {
                    "type": "object",
                    "properties": {
                        h: {"type": "string"}
                        for h in (
                            "x-source-topic",
                            "x-source-partition",
                            "x-source-offset",
                            "x-error-code",
                            "x-error-reason",
                            "x-consumer",
                        )
                    },
                },
                "payload": {"type": "string", "format": "binary"},
            }
            channel_messages["DeadLetter"] = {"$ref": "#/components/messages/DeadLetter"}
        channels[channel_id] = {
            "address": spec.name,
            "description": f"{spec.description} Key: {spec.key}. Partitions: {spec.partitions}.",
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "partitions": spec.partitions,
                    "topicConfiguration": {"cleanup.policy": [spec.cleanup_policy]},
                }
            },
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Consume {spec.name}",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Rectify event contracts",
            "version": "1.0.0",
            "description": "Topics and messages of the Rectify system. Generated from services/common/contracts.py; "
            "do not edit by hand. Every message is JSON in an envelope carrying its type and schema version. "
            "No message carries a complainant's identity or contact.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
        "x-schemas": sorted(schemas),
    }


def configuration_doc() -> str:
    from services.common.settings import Settings

    lines = [
        "# Configuration",
        "",
        "Every process reads these environment variables once, at start-up (`services/common/settings.py`).",
        "Generated by `rectify schemas`; do not edit by hand.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{n.upper()}` | `{f.default}` | {f.description} |" for n, f in Settings.model_fields.items()]
    lines += [
        "",
        "The local run (`rectify up`) and the tests set `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` to the",
        "servers they start, and a short `KAFKA_SESSION_TIMEOUT_MS` (6000) so consumer groups form quickly",
        "on the local broker.",
        "",
    ]
    return "\n".join(lines)


def render() -> dict[Path, str]:
    """Every generated file, relative to docs/, with its exact text."""
    files = {
        Path("events") / f"{name}.json": json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        for name, schema in json_schemas().items()
    }
    files[Path("configuration.md")] = configuration_doc()
    files[Path("asyncapi.yaml")] = yaml.safe_dump(asyncapi(), allow_unicode=True, sort_keys=False, width=100)
    return files


def write(docs: Path) -> list[Path]:
    changed = []
    events = docs / "events"
    events.mkdir(parents=True, exist_ok=True)
    expected = render()
    for stale in events.glob("*.json"):
        if stale.relative_to(docs) not in expected:
            stale.unlink()
            changed.append(stale)
    for rel, text in expected.items():
        path = docs / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def stale(docs: Path) -> list[str]:
    expected = render()
    problems = [
        str(rel)
        for rel, text in expected.items()
        if not (docs / rel).exists() or (docs / rel).read_text(encoding="utf-8") != text
    ]
    problems += [
        str(p.relative_to(docs)) for p in (docs / "events").glob("*.json") if p.relative_to(docs) not in expected
    ]
    return problems
