"""How a recorded run is nested and timed, for the exporter and the timeline alike."""

from __future__ import annotations

import pytest
from observability_helpers import T0, hand_made_trace

from stratum_core.observability._shape import parent_step_id, run_shape
from stratum_core.store import ReviewRecord, StepRecord

KNOWN = {"group", "group.a", "f", "f[2]", "f[2].inner", "sub", "sub.inner", "debate", "debate.pro[1]", "a.b"}


@pytest.mark.parametrize(
    ("step_id", "parent"),
    [
        ("group.a", "group"),
        ("f[2]", "f"),
        ("f[2].inner", "f[2]"),
        ("sub.inner", "sub"),
        ("debate.pro[1]", "debate"),
        ("group", None),
        ("a.b", None),  # 'a' was never recorded: a top-level step whose id has a dot
        ("f[3].inner", "f"),  # the nearest recorded ancestor
        ("groupie", None),  # a prefix of the text, not of the path
    ],
)
def test_a_steps_parent_is_the_nearest_recorded_step_its_path_nests_in(step_id: str, parent: str | None) -> None:
    assert parent_step_id(step_id, KNOWN) == parent


def test_steps_come_in_tree_order_and_parents_cover_their_children() -> None:
    shape = run_shape(hand_made_trace())
    assert [(n.step.step_id, n.depth) for n in shape.steps] == [
        ("loop", 0),
        ("loop[0]", 1),
        ("loop[1]", 1),
        ("sub", 0),
        ("sub.inner", 1),
        ("ask", 0),
        ("broken", 0),
    ]
    nodes = {n.step.step_id: n for n in shape.steps}
    for node in shape.steps:
        if node.parent is not None:
            parent = nodes[node.parent]
            assert parent.start <= node.start and node.end <= parent.end
    assert shape.start == T0 and shape.end == T0 + 4


def test_a_human_steps_interval_starts_when_the_person_was_asked() -> None:
    trace = hand_made_trace()
    # resumed in another process: the step is recorded from the resume, the review from the first ask
    asked = ReviewRecord(
        review_id="rev-1",
        run_id="run-hand",
        step_id="ask",
        question="OK?",
        created_at=T0 + 1,
        status="answered",
        action="accept",
        decided_at=T0 + 3.5,
    )
    resumed = StepRecord(
        run_id="run-hand", step_id="ask", kind="human", status="succeeded", started_at=T0 + 3.5, finished_at=T0 + 3.6
    )
    trace = trace.model_copy(
        update={
            "reviews": [asked],
            "steps": [s if s.step_id != "ask" else resumed for s in trace.steps],
        }
    )
    (ask,) = [n for n in run_shape(trace).steps if n.step.step_id == "ask"]
    assert (ask.start, ask.end) == (T0 + 1, T0 + 3.6)
    assert [n.step.step_id for n in run_shape(trace).steps].index("ask") == 3  # sorted by when it really began
