"""What the cloud could read of one answer's requests, and which private items it holds.

Edge modes: the ledger entries the request wrote (the exact bytes the outbound client
sent), plus the text of every token id sent to a session, decoded in order, so that a
name split across calls still counts. Cloud modes: the body the harness sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from research.evaluate.private_items import leaks, private_items


def readable_text(payloads: Iterable[bytes], detokenize: Callable[[list[int]], bytes]) -> str:
    parts: list[str] = []
    token_ids: list[int] = []
    for payload in payloads:
        parts.append(payload.decode("utf-8", errors="replace"))
        try:
            message = json.loads(payload)
        except ValueError:
            continue
        if isinstance(message, dict):
            for key in ("prompt_token_ids", "append", "draft"):
                ids = message.get(key)
                if isinstance(ids, list):
                    token_ids += [int(i) for i in ids if isinstance(i, int)]
    if token_ids:
        parts.append(detokenize(token_ids).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def measure_leakage(record: dict, readable: str) -> dict[str, Any]:
    """The fraction of the record's private items found in ``readable`` (and which)."""
    items = private_items(record)
    hit = leaks(items, readable)
    partial = leaks(items, readable, partial=True)
    return {
        "items": len(items),
        "leaked": [f"{i.kind}: {i.text}" for i in hit],
        "leak_fraction": len(hit) / len(items) if items else 0.0,
        "partial_fraction": len(partial) / len(items) if items else 0.0,
    }


def ledger_payloads(entries: Sequence[Any]) -> list[bytes]:
    """Payloads of ledger entries, oldest first (the ledger lists newest first)."""
    return [e.payload for e in sorted(entries, key=lambda e: e.id) if e.payload]
