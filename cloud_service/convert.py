"""Turn a GGUF into a Hugging Face float32 model folder that vLLM can load.

The llama.cpp engine reads the GGUF directly; vLLM wants safetensors plus a config and a
tokenizer. transformers reads GGUF (it needs the ``gguf`` package) and dequantizes the
weights; saving that model gives the folder. The tokenizer comes from the same file, so
both engines see the same vocabulary and share a tokenizer fingerprint.

Runs offline: the GGUF holds everything, and a cloud host should not reach the Hub.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ConvertError(RuntimeError):
    """The conversion cannot run (missing package or file, existing output)."""


def convert_gguf(
    gguf: Path,
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> Path:
    """Dequantize ``gguf`` into ``out_dir`` (config, safetensors, tokenizer, template).

    The folder is written beside ``out_dir`` first and renamed at the end, so a failed
    run never leaves something that looks like a model.
    """
    gguf, out_dir = Path(gguf), Path(out_dir)
    if not gguf.is_file():
        raise ConvertError(f"GGUF file not found: {gguf}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConvertError(f"{out_dir} exists and is not empty (pass --force to replace it)")
    # Before the first huggingface_hub import, which reads it once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConvertError(
            "converting a GGUF needs transformers, gguf and torch: "
            "pip install transformers gguf torch (or 'cogenesis-gateway[vllm]')"
        ) from exc

    source = {"gguf_file": gguf.name, "local_files_only": True}
    progress(f"reading {gguf} and dequantizing to float32 (a minute for small models)...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **source)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), dtype=torch.float32, **source, **_dequantize_option()
        )
    except ImportError as exc:  # transformers raises this when `gguf` is missing
        raise ConvertError(f"{exc} (pip install gguf)") from exc
    _drop_quantization(model)

    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"writing {out_dir}...")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    progress(f"done: {out_dir} (serve it with --engine vllm --model {out_dir})")
    return out_dir


def _dequantize_option() -> dict[str, Any]:
    """Newer transformers can keep GGUF blocks packed (with the ``kernels`` package);
    ask for dense weights explicitly. Older ones always dequantize and lack GgufConfig."""
    try:
        from transformers import GgufConfig
    except ImportError:
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)}


def _drop_quantization(model: Any) -> None:
    """Forget the GGUF 'quantization' left on a dequantized model: save_pretrained
    refuses a model that still has a non-serializable quantizer attached."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    packed = [name for name, p in model.named_parameters() if not p.dtype.is_floating_point]
    if packed:
        raise ConvertError(f"weights were left quantized ({packed[0]}, ...); cannot save")
    quantizer.remove_quantization_config(model)
