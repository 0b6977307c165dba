"""A picture of one run: an SVG timeline of its steps, built with the standard library only.

One row per step (a step, then the steps nested in it, indented; siblings in start order), a bar per step on a
shared time axis, so parallel branches stand side by side in time. Inside a bar, a segment per LLM attempt (failed
ones in another colour) and a tick where a retry began (the samples of a quorum side by side are not retries); a
hatched span where the run waited for a person. Groups are slate brackets with a dot in their status colour. Tokens,
cost and attempts per step on the right; flow, run id, status and totals in the title; a legend at the bottom.

Every element a reader (or a test) may look for carries a class: `step-bar` (with `data-step`), `attempt`,
`attempt-failed`, `retry-mark`, `wait`.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from stratum_core.observability._shape import RunShape, StepNode, attempt_end, review_interval, run_shape
from stratum_core.store import Trace

__all__ = ["render_timeline_svg"]

_SVG_NS = "http://www.w3.org/2000/svg"
_FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
_PAD = 16
_LABEL_W = 240
_STATS_W = 240
_ROW_H = 26
_BAR_H = 14
_INDENT = 14
_CHAR_W = 6.6  # average width of a 12px character, to fit labels
_HEADER_H = 92
_AXIS_H = 22
_GROUP_KINDS = frozenset({"parallel", "race", "for_each", "debate", "flow"})
_STATUS_COLOURS = {
    "succeeded": "#4c9f70",
    "failed": "#d1495b",
    "cancelled": "#8d8d8d",
    "skipped": "#c9c9c9",
    "waiting": "#e6a817",
    "running": "#4f86c6",
}
_ATTEMPT_OK = "#1f5c3d"
_ATTEMPT_FAILED = "#f28e2b"
_RETRY = "#a4161a"
_GROUP = "#57606a"
_WAIT_STROKE = "#c98a00"
_TEXT = "#1f2328"
_MUTED = "#656d76"
_GRID = "#e4e7eb"
_STRIPE = "#f6f8fa"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Tick spacings: 1-2-5 steps below a minute, then clock-friendly ones.
_TICKS = [m * 10.0**e for e in range(-3, 2) for m in (1, 2, 5)] + [
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
]


def _clean(text: Any) -> str:
    """Text safe in XML 1.0: characters XML cannot hold are dropped (ElementTree escapes the rest)."""
    return _XML_INVALID.sub("", str(text))


def _fmt_num(value: float) -> str:
    return f"{value:.10g}" if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")


def _duration(seconds: float) -> str:
    """A duration for people: '850 ms', '1.2 s', '3 min 20 s', '2 h 5 min'."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _tick_label(seconds: float, step: float) -> str:
    if step < 0.1:
        return f"{_fmt_num(round(seconds * 1000, 3))} ms" if seconds < 1 else f"{_fmt_num(round(seconds, 3))} s"
    if step < 60:
        return f"{_fmt_num(seconds)} s"
    if step < 3600:
        return f"{_fmt_num(seconds / 60)} min"
    if step < 86400:
        return f"{_fmt_num(seconds / 3600)} h"
    return f"{_fmt_num(seconds / 86400)} d"


def _money(value: float) -> str:
    """Dollars with two significant digits below a cent ('$0.00042'), cents above ('$1.50'), '$0' for nothing."""
    if value <= 0:
        return "$0"
    if value < 0.000001:
        return "<$0.000001"
    decimals = min(max(2, 1 - math.floor(math.log10(value))), 6)
    return f"${value:.{decimals}f}"


def _cost(value: float, unknown: bool, *, short: bool = False) -> str:
    """A cost as people read it: unknown when a model had no price (at least what the priced calls cost)."""
    if unknown and value <= 0:
        return "cost unknown" if short else "cost unknown (no price for the model)"
    if unknown:
        return f"≥{_money(value)}" if short else f"≥{_money(value)} (some calls unpriced)"
    return _money(value)


def _fit(text: str, width: float) -> str:
    """`text` cut with an ellipsis to fit `width` pixels (estimated)."""
    limit = max(int(width / _CHAR_W), 2)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Svg:
    """A small builder over ElementTree: elements with cleaned attribute values and text."""

    def __init__(self, width: float, height: float, **attributes: Any) -> None:
        self.root = ET.Element(
            "svg",
            {
                "xmlns": _SVG_NS,
                "width": _fmt_num(width),
                "height": _fmt_num(height),
                "viewBox": f"0 0 {_fmt_num(width)} {_fmt_num(height)}",
            },
        )
        for key, value in attributes.items():
            self.root.set(key.replace("_", "-"), _clean(value))

    def add(self, parent: ET.Element | None, tag: str, text: str | None = None, **attributes: Any) -> ET.Element:
        element = ET.SubElement(self.root if parent is None else parent, tag)
        for key, value in attributes.items():
            if value is None:
                continue
            name = "class" if key == "class_" else key.replace("__", ":").replace("_", "-")
            element.set(name, _fmt_num(value) if isinstance(value, float) else _clean(value))
        if text is not None:
            element.text = _clean(text)
        return element

    def tostring(self) -> str:
        ET.indent(self.root, space=" ")
        for text in self.root.iter("text"):  # whitespace inside <text> shows: keep its children inline
            for child in text:
                child.tail = None
        return ET.tostring(self.root, encoding="unicode") + "\n"


class _Layout:
    """Maps time to x: the chart spans from the run's start to its end."""

    def __init__(self, shape: RunShape, width: float) -> None:
        self.start = shape.start
        self.span = max(shape.duration, 0.001)
        self.x0 = _PAD + _LABEL_W
        self.x1 = width - _PAD - _STATS_W
        self.width = width

    def x(self, moment: float) -> float:
        return round(self.x0 + (moment - self.start) / self.span * (self.x1 - self.x0), 2)

    def bar(self, start: float, end: float) -> tuple[float, float]:
        """The x and width of an interval, at least 2 px wide so that an instant still shows."""
        x = self.x(start)
        return x, round(max(self.x(end) - x, 2.0), 2)


def _step_title(node: StepNode) -> str:
    step = node.step
    parts = [
        f"{step.step_id} ({step.kind}{', ' + step.function if step.function else ''}): {step.status}",
        _duration(node.end - node.start),
    ]
    if step.attempts:
        parts.append(f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}")
    if step.tokens_in or step.tokens_out:
        parts.append(f"{step.tokens_in} in / {step.tokens_out} out tokens")
    if step.cost_usd or step.attributes.get("cost_unknown"):
        parts.append(_cost(step.cost_usd, bool(step.attributes.get("cost_unknown"))))
    if step.attributes.get("reserved_tokens"):
        parts.append(_reserved(step.attributes.get("reserved_tokens"), step.attributes.get("reserved_usd")))
    if step.attributes.get("cache_hit"):
        parts.append("cache hit")
    if step.error:
        parts.append(f"{step.error.get('type')}: {step.error.get('message')}")
    return "; ".join(parts)


def _reserved(tokens: Any, usd: Any) -> str:
    """What a step or a run reserved from its budget before its calls: tokens, and dollars when priced."""
    text = f"reserved {tokens:,} tokens" if isinstance(tokens, int) else "reserved"
    return text + (f" / ${usd:.6f}" if isinstance(usd, int | float) and usd else "")


def _step_stats(node: StepNode) -> str:
    step = node.step
    parts: list[str] = []
    if step.attempts > 1:
        parts.append(f"{step.attempts} attempts")
    if step.tokens_in or step.tokens_out:
        parts.append(f"{step.tokens_in + step.tokens_out:,} tok")
    if step.cost_usd or step.attributes.get("cost_unknown"):
        parts.append(_cost(step.cost_usd, bool(step.attributes.get("cost_unknown")), short=True))
    if step.attributes.get("cache_hit"):
        parts.append("cache hit")
    decision = step.attributes.get("decision")
    if decision:
        reviewer = step.attributes.get("reviewer")
        parts.append(f"{decision} by {reviewer}" if reviewer else str(decision))
    if not parts and step.status in ("skipped", "cancelled", "failed"):
        parts.append(step.status)
    return " · ".join(parts)


def _label(node: StepNode) -> str:
    """The step's name within its parent ('a' for 'group.a', '[2]' for 'f[2]'); the full id at the top level."""
    step_id = node.step.step_id
    if node.parent is None:
        return step_id
    return step_id[len(node.parent) :].lstrip(".") or step_id


def _defs(svg: _Svg) -> None:
    defs = svg.add(None, "defs")
    pattern = svg.add(
        defs,
        "pattern",
        id="stratum-hatch",
        width=6.0,
        height=6.0,
        patternUnits="userSpaceOnUse",
        patternTransform="rotate(45)",
    )
    svg.add(pattern, "rect", width=6.0, height=6.0, fill="#fff4d6")
    svg.add(pattern, "line", x1=0.0, y1=0.0, x2=0.0, y2=6.0, stroke=_WAIT_STROKE, stroke_width=2.5)


def _header(svg: _Svg, shape: RunShape, width: float) -> None:
    run = shape.run
    started = datetime.fromtimestamp(shape.start, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    svg.add(
        None,
        "text",
        f"{run.flow} · run {run.run_id} · {run.status}",
        x=_PAD,
        y=26.0,
        font_size=16,
        font_weight="600",
        fill=_TEXT,
        class_="title",
    )
    tokens = run.tokens_in + run.tokens_out
    budget = run.attributes.get("budget")
    reserved = ""
    if isinstance(budget, dict) and budget.get("reserved_tokens"):
        reserved = f"{_reserved(budget.get('reserved_tokens'), budget.get('reserved_usd'))} · "
    line = (
        f"{tokens:,} tokens ({run.tokens_in:,} in / {run.tokens_out:,} out) · "
        f"{_cost(run.cost_usd, run.cost_unknown)} · {reserved}{_duration(shape.duration)} · "
        f"{len(shape.steps)} step{'s' if len(shape.steps) != 1 else ''} · started {started}"
    )
    svg.add(None, "text", line, x=_PAD, y=46.0, fill=_MUTED, class_="subtitle")
    if run.error:
        error = f"{run.error.get('type')}"
        if run.error.get("step_id"):
            error += f" at step '{run.error.get('step_id')}'"
        error += f": {run.error.get('message')}"
        svg.add(
            None, "text", _fit(error, width - 2 * _PAD), x=_PAD, y=64.0, fill=_STATUS_COLOURS["failed"], class_="error"
        )


def _axis(svg: _Svg, layout: _Layout, top: float, bottom: float) -> None:
    step = next((t for t in _TICKS if layout.span / t <= 8), layout.span / 8)
    axis = svg.add(None, "g", class_="axis", font_size=11, fill=_MUTED)
    svg.add(axis, "line", x1=layout.x0, y1=top + _AXIS_H - 4, x2=layout.x1, y2=top + _AXIS_H - 4, stroke="#afb8c1")
    count = int(layout.span / step + 1e-9)
    for index in range(count + 1):
        seconds = index * step
        x = layout.x(layout.start + seconds)
        svg.add(axis, "line", x1=x, y1=top + _AXIS_H, x2=x, y2=bottom, stroke=_GRID, class_="grid")
        svg.add(axis, "line", x1=x, y1=top + _AXIS_H - 8, x2=x, y2=top + _AXIS_H - 4, stroke="#afb8c1", class_="tick")
        svg.add(axis, "text", _tick_label(seconds, step), x=x, y=top + _AXIS_H - 11, text_anchor="middle")


def _row(svg: _Svg, layout: _Layout, node: StepNode, y: float, index: int, run_end: float) -> None:
    step = node.step
    group = svg.add(None, "g", class_=f"step status-{step.status}", data_step=step.step_id)
    if index % 2:
        svg.add(
            group,
            "rect",
            x=float(_PAD),
            y=y,
            width=layout.width - 2 * _PAD,
            height=float(_ROW_H),
            fill=_STRIPE,
            class_="row",
        )
    label_x = _PAD + 6 + node.depth * _INDENT
    name = _fit(_label(node), _LABEL_W - 12 - node.depth * _INDENT - len(step.kind) * _CHAR_W)
    text = svg.add(group, "text", None, x=float(label_x), y=y + 17, fill=_TEXT, class_="label")
    text.text = _clean(name + " ")
    svg.add(text, "tspan", step.kind, fill=_MUTED, font_size=10)

    colour = _STATUS_COLOURS.get(step.status, _STATUS_COLOURS["running"])
    x, width = layout.bar(node.start, node.end)
    is_group = step.kind in _GROUP_KINDS
    if is_group:  # a group is a bracket over the rows of its steps: a thin bar with end ticks, in slate
        bar = svg.add(
            group,
            "rect",
            x=x,
            y=y + 9,
            width=width,
            height=4.0,
            fill=_GROUP,
            class_="step-bar group",
            data_step=step.step_id,
        )
        for end_x in (x, x + width):
            svg.add(group, "line", x1=end_x, y1=y + 6, x2=end_x, y2=y + 18, stroke=_GROUP, stroke_width=2.0)
        svg.add(
            group,
            "circle",
            cx=round(x + width, 2),
            cy=y + 11,
            r=3.5,
            fill=colour,
            class_="group-status",
        )  # how the group ended, in the status colours
    else:
        bar = svg.add(
            group,
            "rect",
            x=x,
            y=y + (_ROW_H - _BAR_H) / 2,
            width=width,
            height=float(_BAR_H),
            rx=3.0,
            fill=colour,
            opacity=0.85,
            class_="step-bar",
            data_step=step.step_id,
        )
    svg.add(bar, "title", _step_title(node))

    for review in node.reviews:
        start, end = review_interval(review, run_end)
        wx, ww = layout.bar(start, end)
        wait = svg.add(
            group,
            "rect",
            x=wx,
            y=y + (_ROW_H - _BAR_H) / 2,
            width=ww,
            height=float(_BAR_H),
            rx=3.0,
            fill="url(#stratum-hatch)",
            stroke=_WAIT_STROKE,
            class_="wait",
            data_review=review.review_id,
        )
        who = f" by {review.reviewer}" if review.reviewer else ""
        svg.add(
            wait,
            "title",
            f"waiting for review {review.review_id} ({review.status}{who}): "
            f"{review.question} ({_duration(end - start)})",
        )
        label = "waiting for review" + (" (pending)" if review.status == "pending" else "")
        label_w = len(label) * 5.6 + 8
        if ww >= label_w:
            lx, anchor = wx + 4, "start"
        elif wx + ww + label_w <= layout.x1:
            lx, anchor = wx + ww + 4, "start"
        else:
            lx, anchor = wx - 4, "end"
        svg.add(
            group,
            "text",
            label,
            x=round(lx, 2),
            y=y + 17,
            font_size=10,
            fill="#7a5200",
            text_anchor=anchor,
            stroke="#ffffff",
            stroke_width=3.0,
            paint_order="stroke",
            class_="wait-label",
        )

    for attempt in node.attempts:
        failed = bool(attempt.violations or attempt.error)
        ax, aw = layout.bar(attempt.started_at, attempt_end(attempt))
        segment = svg.add(
            group,
            "rect",
            x=ax,
            y=y + (_ROW_H - _BAR_H) / 2 + 3,
            width=aw,
            height=float(_BAR_H - 6),
            rx=1.5,
            fill=_ATTEMPT_FAILED if failed else _ATTEMPT_OK,
            class_="attempt attempt-failed" if failed else "attempt attempt-ok",
            data_attempt=attempt.number,
        )
        why = "; ".join(attempt.violations) or attempt.error or "accepted"
        tokens = f"{attempt.tokens_in} in / {attempt.tokens_out} out tokens"
        what = {"quorum": "quorum sample", "sample": "sample"}.get(attempt.kind, "attempt")
        if attempt.reserved_tokens:
            tokens += f", {_reserved(attempt.reserved_tokens, attempt.reserved_usd)}"
        svg.add(
            segment,
            "title",
            f"{what} {attempt.number} ({attempt.model}, {tokens}, "
            f"{_duration((attempt.duration_ms or 0) / 1000)}): {why}",
        )
        if attempt.retry_reason:  # asked again with feedback; the samples of a quorum run side by side instead
            mark = svg.add(
                group,
                "line",
                x1=ax,
                y1=y + 2,
                x2=ax,
                y2=y + _ROW_H - 2,
                stroke=_RETRY,
                stroke_width=2.0,
                class_="retry-mark",
                data_attempt=attempt.number,
            )
            svg.add(
                mark,
                "title",
                f"retry: attempt {attempt.number}" + (f" ({attempt.retry_reason})" if attempt.retry_reason else ""),
            )

    duration = _duration(node.end - node.start)
    end_x = x + width + (4 if is_group else 0)  # clear of a group's status dot
    if end_x + 6 + len(duration) * 5.6 <= layout.x1:
        svg.add(group, "text", duration, x=round(end_x + 4, 2), y=y + 17, font_size=10, fill=_MUTED, class_="duration")
    stats = _step_stats(node)
    if stats:
        svg.add(
            group,
            "text",
            _fit(stats, _STATS_W - 8),
            x=layout.width - _PAD - 4,
            y=y + 17,
            fill=_TEXT,
            text_anchor="end",
            class_="stats",
        )


_LEGEND = (
    ("succeeded", "rect", _STATUS_COLOURS["succeeded"]),
    ("failed", "rect", _STATUS_COLOURS["failed"]),
    ("cancelled", "rect", _STATUS_COLOURS["cancelled"]),
    ("skipped", "rect", _STATUS_COLOURS["skipped"]),
    ("group of steps", "group", _GROUP),
    ("LLM attempt", "rect", _ATTEMPT_OK),
    ("failed attempt", "rect", _ATTEMPT_FAILED),
    ("retry", "tick", _RETRY),
    ("waiting for review", "wait", ""),
)


def _legend(svg: _Svg, top: float, width: float) -> float:
    """Draw the legend from `top`, wrapping; return its height."""
    legend = svg.add(None, "g", class_="legend", font_size=11, fill=_TEXT)
    x, y = float(_PAD), top
    for label, shape, colour in _LEGEND:
        item_w = 22 + len(label) * 6.2 + 14
        if x + item_w > width - _PAD:
            x, y = float(_PAD), y + 20
        if shape == "rect":
            svg.add(legend, "rect", x=x, y=y, width=14.0, height=10.0, rx=2.0, fill=colour)
        elif shape == "group":
            svg.add(legend, "rect", x=x, y=y + 3, width=14.0, height=4.0, fill=colour)
            for end_x in (x, x + 14):
                svg.add(legend, "line", x1=end_x, y1=y, x2=end_x, y2=y + 10, stroke=colour, stroke_width=2.0)
        elif shape == "tick":
            svg.add(legend, "line", x1=x + 7, y1=y - 2, x2=x + 7, y2=y + 12, stroke=colour, stroke_width=2.0)
        else:
            svg.add(
                legend,
                "rect",
                x=x,
                y=y,
                width=14.0,
                height=10.0,
                rx=2.0,
                fill="url(#stratum-hatch)",
                stroke=_WAIT_STROKE,
            )
        svg.add(legend, "text", label, x=x + 20, y=y + 9.5)
        x += item_w
    return y - top + 20


def render_timeline_svg(trace: Trace, *, width: int = 1100) -> str:
    """The run of `trace` as an SVG timeline (a complete document, UTF-8 text); see the module docstring."""
    shape = run_shape(trace)
    width = max(width, _LABEL_W + _STATS_W + 2 * _PAD + 200)
    layout = _Layout(shape, float(width))
    rows_top = _HEADER_H + _AXIS_H
    rows_h = max(len(shape.steps), 1) * _ROW_H
    run = trace.run
    svg = _Svg(width, 0, font_family=_FONT, font_size="12", role="img", data_run_id=run.run_id, data_status=run.status)
    svg.add(None, "title", f"Timeline of run {run.run_id} of flow {run.flow}: {run.status}")
    _defs(svg)
    background = svg.add(None, "rect", x=0.0, y=0.0, width=float(width), fill="#ffffff", class_="background")
    _header(svg, shape, float(width))
    _axis(svg, layout, float(_HEADER_H), float(rows_top + rows_h))
    if not shape.steps:
        svg.add(None, "text", "no steps recorded", x=layout.x0, y=rows_top + 17.0, fill=_MUTED)
    for index, node in enumerate(shape.steps):
        _row(svg, layout, node, float(rows_top + index * _ROW_H), index, shape.end)
    legend_top = rows_top + rows_h + 24
    height = _fmt_num(legend_top + _legend(svg, float(legend_top), float(width)) + _PAD - 6)
    background.set("height", height)
    svg.root.set("height", height)
    svg.root.set("viewBox", f"0 0 {width} {height}")
    return svg.tostring()
