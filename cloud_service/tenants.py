"""Tenants: who may call the cloud, under which name, within which limits.

Tokens are never stored: the tenants file and ``COGENESIS_CLOUD_TENANTS`` hold the
sha256 of each token (``printf %s "$TOKEN" | sha256sum``). A presented token is hashed
and compared in constant time against every tenant, so neither the match nor its
position leaks through timing. Tokens are random strings of high entropy, for which a
fast hash is enough (there is nothing to brute-force from a dictionary).

File format (TOML, or JSON with the same shape)::

    [[tenants]]
    name = "acme"
    token_sha256 = "9f86d08..."
    requests_per_minute = 600     # optional; default: the server's tenant_* settings
    tokens_per_minute = 200000
    max_sessions = 16
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TENANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The tenant of the single COGENESIS_CLOUD_TOKEN (development and the demo).
DEFAULT_TENANT = "default"


class TenantsFileError(ValueError):
    """The tenants file or variable cannot be used; the message says why and where."""


class TenantSpec(BaseModel):
    """One tenant as configured. Limits left out fall back to the server's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TENANT_NAME_PATTERN, description="Shown in metrics and logs.")
    token_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Lower-case hex sha256 of the bearer token."
    )
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    max_sessions: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class TenantLimits:
    """None means unlimited (the server-wide caps still apply)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_sessions: int | None = None


@dataclass(frozen=True)
class Tenant:
    name: str
    limits: TenantLimits


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TenantDirectory:
    """The configured tenants; ``authenticate`` maps a bearer token to its tenant."""

    def __init__(self, specs: Iterable[TenantSpec], defaults: TenantLimits = TenantLimits()):
        self._entries: list[tuple[bytes, Tenant]] = []
        names: set[str] = set()
        hashes: set[str] = set()
        for spec in specs:
            if spec.name in names:
                raise TenantsFileError(f"tenant {spec.name!r} is configured twice")
            if spec.token_sha256 in hashes:
                raise TenantsFileError(f"tenant {spec.name!r} shares a token with another")
            names.add(spec.name)
            hashes.add(spec.token_sha256)
            limits = TenantLimits(
                requests_per_minute=_either(spec.requests_per_minute, defaults.requests_per_minute),
                tokens_per_minute=_either(spec.tokens_per_minute, defaults.tokens_per_minute),
                max_sessions=_either(spec.max_sessions, defaults.max_sessions),
            )
            self._entries.append((bytes.fromhex(spec.token_sha256), Tenant(spec.name, limits)))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> list[str]:
        return [tenant.name for _, tenant in self._entries]

    def authenticate(self, token: str) -> Tenant | None:
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Tenant | None = None
        for stored, tenant in self._entries:  # every entry is compared: no early exit
            if hmac.compare_digest(digest, stored):
                found = tenant
        return found


def load_tenants_file(path: Path) -> list[TenantSpec]:
    """Read ``[[tenants]]`` from a TOML file (or ``{"tenants": [...]}`` from JSON)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TenantsFileError(f"cannot read the tenants file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TenantsFileError(f"the tenants file {path} is not valid: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"tenants"}:
        raise TenantsFileError(f"the tenants file {path} must hold one list named 'tenants'")
    return parse_specs(data["tenants"], where=str(path))


def parse_specs(items: object, *, where: str) -> list[TenantSpec]:
    if not isinstance(items, list):
        raise TenantsFileError(f"{where}: 'tenants' must be a list")
    specs = []
    for i, item in enumerate(items):
        try:
            specs.append(TenantSpec.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise TenantsFileError(f"{where}: tenant #{i + 1}: {problems}") from None
    return specs


def _either(own: int | None, default: int | None) -> int | None:
    return own if own is not None else default
