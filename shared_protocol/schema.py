"""JSON schema export of the wire protocol (`cogenesis protocol schema`)."""

from __future__ import annotations

import json

from shared_protocol import limits, messages

WIRE_MODELS = (
    messages.InfoResponse,
    messages.SketchRequest,
    messages.SketchResponse,
    messages.SessionOpenRequest,
    messages.SessionOpenResponse,
    messages.SessionStepRequest,
    messages.SessionStepResponse,
    messages.ErrorResponse,
)


def protocol_schema() -> dict:
    return {
        "protocol_version": limits.PROTOCOL_VERSION,
        "messages": {m.__name__: m.model_json_schema() for m in WIRE_MODELS},
    }


def protocol_schema_json() -> str:
    return json.dumps(protocol_schema(), indent=2, sort_keys=True)
