"""A request's stop sequences, applied to the answer as it streams.

OpenAI's ``stop``: generation ends where one of the sequences would appear, the
sequence itself is not returned, and the finish reason is "stop". A sequence may span
several tokens, so text that could still become one is held back until it is decided,
and nothing after a stop ever reaches the app (streamed or not).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class StopText:
    def __init__(self, stops: Sequence[str], emit: Callable[[str], None]) -> None:
        self.stops = [s for s in stops if s]
        self.emit = emit
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> bool:
        """Pass on what of ``piece`` is decided; True once a stop sequence is complete
        (the caller then ends generation)."""
        if self.stopped or not piece:
            return self.stopped
        if not self.stops:
            self.emit(piece)
            return False
        text = self._held + piece
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if found:
            self._held = ""
            self.stopped = True
            if min(found):
                self.emit(text[: min(found)])
            return True
        keep = self._undecided(text)
        self._held = text[len(text) - keep :] if keep else ""
        if len(text) > keep:
            self.emit(text[: len(text) - keep])
        return False

    def flush(self) -> None:
        """The answer ended without a stop: what was held back is plain text after all."""
        if self._held and not self.stopped:
            self.emit(self._held)
        self._held = ""

    def _undecided(self, text: str) -> int:
        """Length of the longest end of ``text`` that begins some stop sequence."""
        for n in range(min(len(text), max(map(len, self.stops)) - 1), 0, -1):
            tail = text[-n:]
            if any(stop.startswith(tail) for stop in self.stops):
                return n
        return 0
