"""Tokenizer fingerprint: how both ends prove their token ids mean the same bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def tokenizer_fingerprint(pieces: Iterable[bytes]) -> str:
    """sha256 over the vocabulary in id order; each piece is length-prefixed."""
    digest = hashlib.sha256()
    count = 0
    for piece in pieces:
        digest.update(len(piece).to_bytes(4, "little"))
        digest.update(piece)
        count += 1
    return f"sha256:{count}:{digest.hexdigest()[:32]}"
