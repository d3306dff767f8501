"""Sketch mode: ask the cloud model for an outline, then parse it without ever failing.

The prompt carries only the context-free task the edge sent; the system prompt is
constant so its KV prefix is reused between sketches.
"""

from __future__ import annotations

import re

from shared_protocol import limits

SKETCH_SYSTEM = (
    "You plan pieces of writing. Given a writing task, reply with a short numbered "
    "outline of the key points the text should cover: one point per line, each a short "
    "phrase. Write nothing else: no title, no introduction, no conclusion."
)


def sketch_user_message(instruction: str, max_points: int) -> str:
    return f"Writing task: {instruction.strip()}\n\nGive at most {max_points} key points."


_ITEM = re.compile(
    r"^\s*(?:[-*+•·–—]|\(?\d{1,2}[.):]|\(?[a-zA-Z][.)]|step \d+[.:)]?)\s+(.*)$", re.I
)
_HEADING = re.compile(r"^\s*#{1,6}\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKDOWN = [
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links and images -> their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])[*_](\S(?:.*?\S)?)[*_](?![\w*])"), r"\1"),  # italics
    (re.compile(r"`+([^`]*)`+"), r"\1"),  # code
    (re.compile(r"<[^>\n]{1,40}>"), ""),  # stray tags such as <|im_end|>
    (re.compile(r"\s+"), " "),
]
_MIN_ALNUM = 3  # fewer letters/digits than this is junk ("-", "1.", "**")


def outline_complete(text: str, max_points: int) -> bool:
    """Whether the finished lines of ``text`` already make the whole outline.

    The stop hint for generation: small models go on after the list (a repeat of it,
    a sample text) until the token limit, and those tokens are wasted time. Done means
    max_points distinct items, an item repeating an earlier one, or prose after items.
    """
    finished = text.rsplit("\n", 1)[0].splitlines() if "\n" in text else []
    seen: set[str] = set()
    for line in finished:
        item = _ITEM.match(line)
        if item is None:
            if seen and line.strip() and not line[0].isspace():
                return True  # prose after the list (indented lines continue an item)
            continue
        key = _key(_clean(item.group(1)))
        if key in seen:
            return True  # the model is repeating itself
        if len(key) >= _MIN_ALNUM:
            seen.add(key)
    return len(seen) >= max_points


def parse_points(
    text: str, max_points: int, fallback: str = "", *, cut_off: bool = False
) -> list[str]:
    """Outline points from model output: list items if any, else sentences.

    Points are cleaned of markdown, deduplicated, capped at ``max_points`` and at
    ``limits.MAX_POINT_CHARS`` each. ``cut_off`` says generation hit its token limit, so
    an item on the unfinished last line (no line end after it) is dropped when others
    exist. Always returns at least one point: ``fallback`` (then a generic point) when
    nothing is usable.
    """
    max_points = _clamp(max_points)
    lines = _lines(text)
    items = _items(lines)
    if items:
        tail = text.rsplit("\n", 1)[-1].splitlines()
        if cut_off and len(items) > 1 and tail and _ITEM.match(tail[-1]):
            items = items[:-1]
    else:
        items = [s for ln in lines for s in _SENTENCE_END.split(ln)]
        if cut_off and len(items) > 1:
            items = items[:-1]
    points = _clean_all(items, max_points)
    if not points:
        points = _clean_all(_SENTENCE_END.split(fallback), 1) or ["Cover the main points."]
    return points


class OutlineStream:
    """The points of an outline as it is generated, each once its line is finished.

    ``finished(text)`` gives the points new since the last call; ``rest(text, cut_off)``
    those left at the end. Together they are exactly ``parse_points`` of the whole
    text: list items of finished lines are a prefix of the final list (an item on an
    unfinished last line is the only one ``cut_off`` drops), and an outline written as
    prose is parsed only at the end.
    """

    def __init__(self, max_points: int, fallback: str = "") -> None:
        self.max_points = max_points
        self.fallback = fallback
        self.sent: list[str] = []

    def finished(self, text: str) -> list[str]:
        done = text[: text.rfind("\n") + 1]
        return self._new(_clean_all(_items(_lines(done)), _clamp(self.max_points)))

    def rest(self, text: str, *, cut_off: bool) -> list[str]:
        return self._new(parse_points(text, self.max_points, self.fallback, cut_off=cut_off))

    def _new(self, points: list[str]) -> list[str]:
        if points[: len(self.sent)] != self.sent:  # cannot happen (see the class doc)
            raise AssertionError("streamed outline points are not a prefix of the outline")
        new = points[len(self.sent) :]
        self.sent = points
        return new


def _clamp(max_points: int) -> int:
    return max(1, min(max_points, limits.MAX_SKETCH_POINTS))


def _lines(text: str) -> list[str]:
    return [ln for ln in _strip_fences(text).splitlines() if not _HEADING.match(ln)]


def _items(lines: list[str]) -> list[str]:
    return [m.group(1) for ln in lines if (m := _ITEM.match(ln))]


def _clean_all(candidates: list[str], max_points: int) -> list[str]:
    points: list[str] = []
    seen: set[str] = set()
    for raw in candidates:
        point = _clean(raw)
        key = _key(point)
        if len(key) < _MIN_ALNUM or key in seen:
            continue
        seen.add(key)
        points.append(point)
        if len(points) == max_points:
            break
    return points


def _key(point: str) -> str:
    return re.sub(r"\W+", "", point.lower())


def _clean(raw: str) -> str:
    point = raw
    while (nested := _ITEM.match(point)) is not None:  # "* 1. point" -> "point"
        point = nested.group(1)
    for pattern, replacement in _MARKDOWN:
        point = pattern.sub(replacement, point)
    point = point.strip(" \t-*_#>:;,")
    return _truncate(point, limits.MAX_POINT_CHARS)


def _truncate(point: str, limit: int) -> str:
    """Cut rambling points at a word boundary, leaving room for the ellipsis."""
    if len(point) <= limit:
        return point
    cut = point[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def _strip_fences(text: str) -> str:
    return re.sub(r"^\s*```.*$", "", text or "", flags=re.M)
