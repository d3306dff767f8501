"""Engines behind the cloud routes. ``build_engine`` imports only the one it needs."""

from __future__ import annotations

from cloud_service.engines.base import ChatResult, Engine, TopKRow
from cloud_service.errors import EngineUnavailable
from cloud_service.settings import CloudSettings


def build_engine(settings: CloudSettings) -> Engine:
    """Load the engine named in settings (raises EngineUnavailable or DefaultModelMissing)."""
    model = settings.resolved_model_path()
    if settings.engine == "vllm":
        from cloud_service.engines.vllm import VllmEngine

        return VllmEngine(
            str(model),
            n_ctx=settings.n_ctx,
            max_top_k=settings.max_top_k,
            **settings.vllm_options,
        )
    try:
        from cloud_service.engines.llamacpp import LlamaCppEngine
    except ModuleNotFoundError as exc:  # pragma: no cover - a dependency of the cloud extra
        if (exc.name or "").partition(".")[0] != "llama_cpp":
            raise
        raise EngineUnavailable(
            "the llamacpp engine needs llama-cpp-python: pip install 'cogenesis-gateway[cloud]'"
        ) from exc
    return LlamaCppEngine(
        model,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        max_saved_states=settings.max_saved_states,
    )


__all__ = ["ChatResult", "Engine", "TopKRow", "build_engine"]
