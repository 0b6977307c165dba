"""The SVG timeline: well-formed, a bar per step, attempts, retries and waits for people marked, text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from observability_helpers import hand_made_trace

from scripts.make_timeline_example import run_example
from stratum_core.observability import render_timeline_svg
from stratum_core.store import RunRecord, Trace

NS = "{http://www.w3.org/2000/svg}"
EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "timeline-example.svg"


def elements(root: ET.Element, tag: str, css_class: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if css_class in (e.get("class") or "").split()]


def bars(root: ET.Element) -> dict[str, ET.Element]:
    found = elements(root, "rect", "step-bar")
    by_step = {bar.get("data-step") or "": bar for bar in found}
    assert len(by_step) == len(found), "one bar per step"
    return by_step


def row(root: ET.Element, step_id: str) -> ET.Element:
    (group,) = [g for g in root.iter(f"{NS}g") if g.get("data-step") == step_id]
    return group


def span(bar: ET.Element) -> tuple[float, float]:
    x = float(bar.get("x") or 0)
    return x, x + float(bar.get("width") or 0)


def texts(root: ET.Element) -> str:
    return " ".join("".join(e.itertext()) for e in root.iter(f"{NS}text"))


@pytest.fixture(scope="module")
def example_trace() -> Trace:
    import anyio

    return anyio.run(lambda: run_example(latency=0.1, review_delay=0.2))


def test_a_parallel_run_with_a_retry_and_a_wait_is_drawn_with_every_mark(example_trace: Trace) -> None:
    svg = render_timeline_svg(example_trace)
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    step_ids = {s.step_id for s in example_trace.steps}
    assert step_ids == {
        "summary",
        "reviews",
        "reviews.security",
        "reviews.style",
        "reviews.tests",
        "approval",
        "decision",
    }
    drawn = bars(root)
    assert set(drawn) == step_ids
    assert "group" in (drawn["reviews"].get("class") or "")

    # branches of the parallel group stand side by side in time, indented under the group
    branches = [span(drawn[f"reviews.{b}"]) for b in ("security", "style", "tests")]
    assert max(start for start, _ in branches) < min(end for _, end in branches)
    label_x = {
        s: float(row(root, s).find(f"{NS}text[@class='label']").get("x") or 0)  # type: ignore[union-attr]
        for s in ("reviews", "reviews.security", "approval")
    }
    assert label_x["reviews.security"] > label_x["reviews"] == label_x["approval"]

    # the security review: a failed attempt, then a retry mark and an accepted attempt
    security = row(root, "reviews.security")
    assert [a.get("data-attempt") for a in elements(security, "rect", "attempt-failed")] == ["1"]
    assert [a.get("data-attempt") for a in elements(security, "rect", "attempt-ok")] == ["2"]
    assert [m.get("data-attempt") for m in elements(security, "line", "retry-mark")] == ["2"]
    assert len(elements(root, "line", "retry-mark")) == 1
    assert "2 attempts" in texts(security)

    # the wait for a person is hatched and labelled, in the human step's row
    approval = row(root, "approval")
    (wait,) = elements(root, "rect", "wait")
    assert wait in list(approval.iter())
    assert wait.get("fill") == "url(#stratum-hatch)"
    assert "waiting for review" in texts(approval) and "accept by ann" in texts(approval)

    # title: flow, run id, status, total tokens and cost
    run = example_trace.run
    header = texts(root)
    assert run.flow in header and run.run_id in header and "succeeded" in header
    assert f"{run.tokens_in + run.tokens_out:,} tokens" in header and f"${run.cost_usd:.4f}" in header
    assert "tok" in texts(row(root, "summary"))
    assert len(elements(root, "line", "tick")) >= 2 and elements(root, "g", "legend")


def test_the_checked_in_example_is_well_formed_and_complete() -> None:
    root = ET.parse(EXAMPLE).getroot()
    assert set(bars(root)) == {
        "summary",
        "reviews",
        "reviews.security",
        "reviews.style",
        "reviews.tests",
        "approval",
        "decision",
    }
    assert elements(root, "line", "retry-mark") and elements(root, "rect", "attempt-failed")
    assert elements(root, "rect", "wait") and "waiting for review" in texts(root)


def test_text_from_plans_and_errors_is_escaped_and_stripped_of_what_xml_cannot_hold() -> None:
    trace = hand_made_trace(flow='fl<o>w & "co"', error_message="boom \x1b[31m<script>alert(1)</script>\x00")
    svg = render_timeline_svg(trace)
    root = ET.fromstring(svg)  # would raise on a stray '<' or a control character
    header = texts(root)
    assert 'fl<o>w & "co"' in header
    assert "<script>alert(1)</script>" in header and "\x1b" not in svg and "\x00" not in svg
    assert "<script>" not in svg


def test_nested_steps_paths_and_a_pending_review_are_drawn() -> None:
    trace = hand_made_trace()
    root = ET.fromstring(render_timeline_svg(trace))
    assert set(bars(root)) == {"loop", "loop[0]", "loop[1]", "sub", "sub.inner", "ask", "broken"}
    indent = {
        s: float(row(root, s).find(f"{NS}text[@class='label']").get("x") or 0)  # type: ignore[union-attr]
        for s in ("loop", "loop[0]", "sub", "sub.inner")
    }
    assert indent["loop[0]"] > indent["loop"] and indent["sub.inner"] > indent["sub"]
    # rows are in tree order: a step, then what nests in it
    order = [g.get("data-step") for g in root.iter(f"{NS}g") if g.get("data-step")]
    assert order.index("loop[0]") == order.index("loop") + 1
    assert order.index("sub.inner") == order.index("sub") + 1
    ask = row(root, "ask")
    assert elements(ask, "rect", "wait") and "waiting for review (pending)" in texts(ask)
    assert row(root, "broken").get("class") == "step status-failed"


def test_a_run_with_no_steps_still_renders() -> None:
    run = RunRecord(
        run_id="r0",
        flow="empty",
        plan_hash="h",
        plan_text="",
        input={},
        status="failed",
        error={"type": "ConfigurationError", "message": "no model", "step_id": None},
    )
    root = ET.fromstring(render_timeline_svg(Trace(run=run, steps=[], attempts=[], reviews=[])))
    assert bars(root) == {}
    assert "no steps recorded" in texts(root) and "ConfigurationError" in texts(root)


def _quorum_trace(*, cost: float, unknown: bool) -> Trace:
    from stratum_core.store import AttemptRecord, StepRecord

    t0 = 1_700_000_000.0
    run = RunRecord(
        run_id="q",
        flow="rate",
        status="succeeded",
        plan_hash="h",
        plan_text="",
        input={},
        created_at=t0,
        finished_at=t0 + 2,
        duration_ms=2000,
        cost_usd=cost,
        cost_unknown=unknown,
    )
    step = StepRecord(
        run_id="q",
        step_id="severity",
        kind="infer",
        status="succeeded",
        started_at=t0,
        finished_at=t0 + 2,
        attempts=4,
        cost_usd=cost,
        attributes={"cost_unknown": True} if unknown else {},
    )
    samples = [
        AttemptRecord(run_id="q", step_id="severity", number=n, kind="quorum", started_at=t0, duration_ms=900)
        for n in (1, 2, 3)
    ]
    retried = AttemptRecord(
        run_id="q",
        step_id="severity",
        number=4,
        kind="quorum",
        started_at=t0 + 1,
        duration_ms=900,
        retry_reason="ensure: result.level != ''",
    )
    return Trace(run=run, steps=[step], attempts=[*samples, retried], reviews=[])


def test_the_samples_of_a_quorum_are_not_drawn_as_retries_but_a_retry_within_one_is() -> None:
    root = ET.fromstring(render_timeline_svg(_quorum_trace(cost=0.0, unknown=False)))
    assert len(elements(root, "rect", "attempt")) == 4
    assert [mark.get("data-attempt") for mark in elements(root, "line", "retry-mark")] == ["4"]
    titles = [title.text or "" for title in root.iter(f"{NS}title")]
    assert any(title.startswith("quorum sample 2 ") for title in titles)


@pytest.mark.parametrize(
    ("cost", "unknown", "header", "stats"),
    [
        (0.0, True, "cost unknown (no price for the model)", "cost unknown"),
        (0.00042, False, "$0.00042", "$0.00042"),
        (0.0000004, False, "<$0.000001", "<$0.000001"),
        (0.0123, True, "≥$0.012 (some calls unpriced)", "≥$0.012"),
        (1.5, False, "$1.50", "$1.50"),
    ],
    ids=["unknown", "tiny", "below-a-millionth", "partly-unknown", "dollars"],
)
def test_costs_are_shown_readably_tiny_and_unknown_ones_too(
    cost: float, unknown: bool, header: str, stats: str
) -> None:
    root = ET.fromstring(render_timeline_svg(_quorum_trace(cost=cost, unknown=unknown)))
    subtitle = texts(root)
    assert header in subtitle
    assert re.search(r"\$0\.0+(?![0-9])", subtitle) is None  # never a run of zeros that says nothing
    (stat,) = elements(row(root, "severity"), "text", "stats")
    assert stats in "".join(stat.itertext())


def test_group_bars_have_their_own_colour_the_legend_shows_and_steps_keep_the_status_colours(
    example_trace: Trace,
) -> None:
    from stratum_core.observability._timeline import _STATUS_COLOURS

    root = ET.fromstring(render_timeline_svg(example_trace))
    drawn = bars(root)
    group_fill = drawn["reviews"].get("fill")
    assert group_fill not in _STATUS_COLOURS.values()
    assert {drawn[s].get("fill") for s in drawn if s != "reviews"} <= set(_STATUS_COLOURS.values())
    legend = elements(root, "g", "legend")[0]
    swatches = [(e.get("fill"), e.get("opacity")) for e in legend.iter(f"{NS}rect")]
    assert (group_fill, None) in swatches
    assert all(drawn[s].get("opacity") in (None, "0.85") for s in drawn if s != "reviews")
