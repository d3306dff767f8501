"""The cloud half of the gateway: sketches and top-k log-probs over context-free input.

It imports ``shared_protocol`` only, never ``edge_agent``.
"""

from cloud_service.app import create_app
from cloud_service.settings import CloudSettings

__all__ = ["CloudSettings", "create_app"]
