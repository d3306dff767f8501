"""What ``cogenesis edge serve`` says about access when it starts."""

from __future__ import annotations

from edge_agent.settings import EdgeSettings
from edge_agent.store import KeyRepository
from shared_protocol.hosts import is_loopback

AUTH_OFF_LINE = (
    "cogenesis: WARNING: API KEYS ARE OFF (COGENESIS_EDGE_AUTH=off): any program on this "
    "machine can read, change and delete every profile and ledger"
)


class UnsafeAuthMode(ValueError):
    """Keys off on an address other machines can reach."""


def check_auth_mode(settings: EdgeSettings) -> None:
    if settings.auth == "off" and not is_loopback(settings.host):
        raise UnsafeAuthMode(
            f"COGENESIS_EDGE_AUTH=off is for experiments on loopback, but the edge would "
            f"listen on {settings.host}; use keys, or bind to 127.0.0.1"
        )


def startup_notice(settings: EdgeSettings, keys: KeyRepository) -> list[str]:
    """Lines for stderr: keys off (one unmissable line), or how to make the first key."""
    if settings.auth == "off":
        return [AUTH_OFF_LINE]
    if keys.count_active() == 0:
        return [
            "cogenesis: no API keys yet; every /v1 route needs one. Create the first with:",
            "  cogenesis keys create --admin --name me        (manages everything)",
            "  cogenesis keys create --user USER_ID --name app (acts as one profile)",
            "then send it as 'Authorization: Bearer <key>' (the OpenAI clients' api_key).",
        ]
    return []
