"""Loading a GGUF with the settings both ends decode with."""

from __future__ import annotations

from pathlib import Path

from llama_cpp import Llama

from llama_runtime.threads import resolve_threads

DEFAULT_BATCH = 512  # llama-cpp-python's default


class ModelLoadError(RuntimeError):
    """The GGUF file is missing or llama.cpp cannot load it."""


def load_model(
    path: str | Path,
    *,
    n_ctx: int,
    n_threads: int | None = None,
    n_batch: int = DEFAULT_BATCH,
) -> Llama:
    """A llama.cpp context over `path`, set up for batch-invariant decoding.

    Flash attention is off: with it on, llama.cpp's CPU logits for the same tokens drift
    by up to ~1 logit depending on how the tokens were split into batches. The micro-batch
    equals the batch, so llama.cpp never splits a batch into a one-token piece (see
    `batching`). Logits are computed only where `context.LiveContext.decode` asks.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    threads = resolve_threads(n_threads)
    try:
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
            flash_attn=False,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load GGUF model {path}: {exc}") from exc


def load_vocab(path: str | Path) -> Llama:
    """Only the vocabulary of `path` (no weights): enough to tokenize and detokenize."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    try:
        return Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load GGUF vocabulary {path}: {exc}") from exc
