"""The narrow, versioned wire protocol between the edge agent and the cloud service.

It carries context-free instructions, sketches, token ids and top-k log-probs. No model
here has a field that could carry profile or history text. This package imports neither
end. Beside the protocol it holds the few rules both ends must share: the default model
(``defaults``), which hosts are loopback (``hosts``) and the CLI's settings flags
(``settings_cli``).
"""

from shared_protocol.limits import PROTOCOL_VERSION
from shared_protocol.messages import (
    PROPOSE_CAPABILITY,
    ErrorBody,
    ErrorResponse,
    InfoResponse,
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    SketchDoneEvent,
    SketchErrorEvent,
    SketchEvent,
    SketchPointEvent,
    SketchRequest,
    SketchResponse,
    TopK,
)

__all__ = [
    "PROPOSE_CAPABILITY",
    "PROTOCOL_VERSION",
    "ErrorBody",
    "ErrorResponse",
    "InfoResponse",
    "SessionOpenRequest",
    "SessionOpenResponse",
    "SessionStepRequest",
    "SessionStepResponse",
    "SketchDoneEvent",
    "SketchErrorEvent",
    "SketchEvent",
    "SketchPointEvent",
    "SketchRequest",
    "SketchResponse",
    "TopK",
]
