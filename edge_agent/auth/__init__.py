"""Who may call the edge: local API keys, and the Host and origin checks."""

from edge_agent.auth.host import HostPolicy, LocalOnlyMiddleware, is_loopback
from edge_agent.auth.keys import AUTH_OFF, Admin, Caller, Principal, admin, caller

__all__ = [
    "AUTH_OFF",
    "Admin",
    "Caller",
    "HostPolicy",
    "LocalOnlyMiddleware",
    "Principal",
    "admin",
    "caller",
    "is_loopback",
]
