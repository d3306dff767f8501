"""What the privacy page shows, computed from ledger rows: pure functions, no I/O."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from edge_agent.store.ledger import LedgerTotal
from edge_agent.store.schemas import LedgerEntryOut

# The guard's typed placeholders, e.g. <PERSON> (see edge_agent.guard.result.placeholder).
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
CHART_DAYS = 30


@dataclass(frozen=True)
class Segment:
    text: str
    placeholder: bool


def payload_segments(text: str) -> list[Segment]:
    """The payload as it was sent, cut so that each placeholder can be highlighted."""
    segments: list[Segment] = []
    cursor = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > cursor:
            segments.append(Segment(text[cursor : match.start()], False))
        segments.append(Segment(match.group(), True))
        cursor = match.end()
    if cursor < len(text):
        segments.append(Segment(text[cursor:], False))
    return segments


def findings_by_type(findings: Any) -> dict[str, int]:
    """How many findings of each type the guard recorded (list of records, or a record
    with ``counts`` or ``findings``)."""
    if isinstance(findings, dict):
        if isinstance(findings.get("counts"), dict):
            return {str(k): int(v) for k, v in findings["counts"].items()}
        findings = findings.get("findings", [])
    if not isinstance(findings, list):
        return {}
    kinds = Counter(
        str(f.get("entity_type")) for f in findings if isinstance(f, dict) and "entity_type" in f
    )
    return dict(sorted(kinds.items()))


@dataclass(frozen=True)
class Status:
    css: str
    label: str
    explanation: str


def status_of(entry: LedgerEntryOut) -> Status:
    if entry.status == "ok":
        return Status("ok", "delivered", f"the cloud answered {entry.http_status}")
    if entry.status == "interrupted":
        return Status(
            "interrupted",
            "interrupted",
            "the edge stopped while sending; whether these bytes reached the cloud is unknown",
        )
    if entry.status == "sending":
        return Status("sending", "sending", "on its way now")
    reason = (entry.error or "").split(":", 1)[0] or "cloud error"
    return Status(
        "degraded",
        f"degraded: {reason}",
        f"{entry.error or 'the call failed'}; the answer was finished on this device",
    )


def human_bytes(count: int | None) -> str:
    if count is None:
        return "?"
    size = float(count)
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Total:
    key: str  # a day (ISO) or a mode
    calls: int
    bytes_up: int
    bytes_down: int


def totals_by(totals: Iterable[LedgerTotal], key: str) -> list[Total]:
    """Sum the per-(day, mode) totals by ``day`` (newest first) or by ``mode``."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for total in totals:
        name = total.day.isoformat() if key == "day" else total.mode
        row = sums[name]
        row[0] += total.calls
        row[1] += total.bytes_up
        row[2] += total.bytes_down
    ordered = sorted(sums, reverse=key == "day")
    return [Total(name, *sums[name]) for name in ordered]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    """An SVG bar chart of bytes up per day, laid out here, drawn by the template."""

    width: int
    height: int
    left: int
    bottom: int
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    summary: str


def bytes_up_chart(
    totals: Sequence[LedgerTotal], days: int = CHART_DAYS, width: int = 640, height: int = 200
) -> Chart | None:
    """One bar per day over the last ``days`` days that have data (empty days show)."""
    if not totals:
        return None
    per_day: dict[date, tuple[int, int]] = {}
    for total in totals:
        up, calls = per_day.get(total.day, (0, 0))
        per_day[total.day] = (up + total.bytes_up, calls + total.calls)
    last = max(per_day)
    first = max(min(per_day), last - timedelta(days=days - 1))
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    left, bottom, top = 56, 28, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(per_day.get(d, (0, 0))[0] for d in span)
    scale = peak or 1  # all zero: flat bars, not a division by zero
    slot = plot_w / len(span)
    bar_w = min(slot * 0.8, 40.0)  # a few days of data must not look like a wall
    bars = []
    for i, day in enumerate(span):
        up, calls = per_day.get(day, (0, 0))
        bar_h = plot_h * up / scale
        bars.append(
            Bar(
                x=round(left + i * slot + (slot - bar_w) / 2, 1),
                y=round(top + plot_h - bar_h, 1),
                width=round(bar_w, 1),
                height=round(bar_h, 1),
                title=f"{day.isoformat()}: {human_bytes(up)} up in {calls} calls",
            )
        )
    fractions = (0, 0.5, 1) if peak else (0,)
    ticks = [Tick(round(top + plot_h * (1 - f), 1), human_bytes(int(peak * f))) for f in fractions]
    shown = sorted({0, len(span) - 1, (len(span) - 1) // 2})
    labels = [Label(round(left + (i + 0.5) * slot, 1), span[i].isoformat()[5:]) for i in shown]
    total_up = sum(per_day.get(d, (0, 0))[0] for d in span)
    summary = (
        f"Bytes sent to the cloud per day, {span[0].isoformat()} to {span[-1].isoformat()}: "
        f"{human_bytes(total_up)} in all, at most {human_bytes(peak)} on one day."
    )
    return Chart(width, height, left, bottom, bars, ticks, labels, summary)
