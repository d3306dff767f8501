"""Who may call the edge: local API keys, and the Host and origin checks."""

from edge_agent.auth.host import HostPolicy, LocalOnlyMiddleware, is_loopback
from edge_agent.auth.keys import (
    AUTH_OFF,
    AuthError,
    Forbidden,
    InvalidKey,
    MissingKey,
    Principal,
    admin,
    caller,
)

__all__ = [
    "AUTH_OFF",
    "AuthError",
    "Forbidden",
    "HostPolicy",
    "InvalidKey",
    "LocalOnlyMiddleware",
    "MissingKey",
    "Principal",
    "admin",
    "caller",
    "is_loopback",
]
