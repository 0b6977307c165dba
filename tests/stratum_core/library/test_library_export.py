"""Export: a library module as a `.stratum.yaml` plan that validates, and a clear error for what has no plan form."""

from __future__ import annotations

from pathlib import Path

import export_refusals
import pytest

from examples import code_review, support_ticket
from stratum_core.cli import main
from stratum_core.errors import PlanError
from stratum_core.library import export_plan
from stratum_core.library._emit import plan_text
from stratum_core.plan import CallStep, HumanFunction, ParallelStep, load_plan, load_plan_text

REFUSALS = Path(export_refusals.__file__).resolve()


def test_the_support_example_exports_to_a_plan_equal_to_its_library_definitions() -> None:
    plan = load_plan_text(export_plan(support_ticket), source="support.stratum.yaml")
    for function in (support_ticket.classify, support_ticket.draft_reply):
        assert plan.functions[function.name] == function.definition
    for compute_fn in (support_ticket.lookup_customer, support_ticket.send_reply):
        assert plan.functions[compute_fn.name].model_dump() == {
            **compute_fn.definition.model_dump(),
            "call": f"examples.support_ticket:{compute_fn.name}",
        }
    for name in ("Sentiment", "Customer", "Ticket", "Reply", "Approval", "Delivery"):
        assert plan.contracts[name] == support_ticket.triage.contracts.get(name, plan.contracts[name])
    flow = plan.flows["triage"]
    assert [step.id for step in flow.steps] == ["customer", "sentiment", "reply", "approval", "delivery"]
    assert flow.result == "$.steps.delivery.output" and flow.budget == support_ticket.triage.definition.budget
    approval = plan.functions["approval"]
    assert isinstance(approval, HumanFunction) and approval.timeout == 86400 and approval.options == ("send", "discard")
    delivery = flow.steps[4]
    assert isinstance(delivery, CallStep) and delivery.inputs["decision"] == "$.steps.approval.output.decision"


def test_a_parallel_group_exports_with_its_require_and_validate() -> None:
    plan = load_plan_text(export_plan(code_review, "review_code"))
    [group, judge] = plan.flows["review_code"].steps
    assert isinstance(group, ParallelStep) and group.parallel.require == 2
    assert group.parallel.validate_ == "len(outputs) >= 2"
    assert [branch.id for branch in group.parallel.steps] == ["review", "review_2", "review_3"]
    assert [branch.inputs["focus"] for branch in group.parallel.steps] == ["security", "style", "performance"]
    assert isinstance(judge, CallStep) and judge.inputs == {"reviews": "$.steps.reviews.output"}
    assert set(plan.flows) == {"review_code"}


def test_the_emitted_text_loads_back_into_the_same_models() -> None:
    functions = {f.name: f.definition for f in (code_review.review, code_review.judge, code_review.decide)}
    contracts = dict(code_review.review.contracts) | dict(code_review.judge.contracts)
    plan = load_plan_text(plan_text(contracts=contracts, functions=functions, flows={}))
    assert plan.functions == functions and plan.contracts == contracts


def problems(target: str) -> list[tuple[int, str, str]]:
    with pytest.raises(PlanError) as caught:
        export_plan(export_refusals, target)
    assert all(Path(p.file).resolve() == REFUSALS for p in caught.value.problems)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def line_of(text: str) -> int:
    return REFUSALS.read_text(encoding="utf-8").splitlines().index(text) + 1


@pytest.mark.parametrize(
    ("flow", "line", "message"),
    [
        ("branching", "    if loud:", "an `if` statement cannot be exported"),
        ("looping", "    for text in texts:", "a `for` loop cannot be exported"),
        ("arithmetic", '    first = await shout(text + "!")', "`text + '!'` cannot be exported"),
        (
            "plain_call",
            "    cleaned = await helper(text)  # type: ignore[misc]",
            "`helper(text)` calls `helper`, which is not a Stratum function",
        ),
        (
            "whole_decision",
            "    shouted = await shout(decision)  # type: ignore[arg-type]",
            "`decision` is a HumanDecision: pass `decision.value` to export it",
        ),
        (
            "python_validate",
            "    both = await parallel(shout(text), shout(text), validate=lambda outputs: len(outputs) == 2)",
            "validate must be a literal to be exported, not `lambda outputs: len(outputs) == 2`",
        ),
    ],
)
def test_a_construct_with_no_plan_form_is_named_with_its_line(flow: str, line: str, message: str) -> None:
    [(found_line, path, found_message)] = problems(flow)
    assert path == f"flows.{flow}"
    assert found_line == line_of(line)
    assert found_message == message


def test_a_python_callable_condition_is_named_with_the_expression_it_could_be() -> None:
    with pytest.raises(PlanError) as caught:
        export_plan(export_refusals, "tag")
    [problem] = caught.value.problems
    assert problem.path == "functions.tag.ensure[0]"
    assert problem.message == "a Python callable (lambda r: len(r) > 2) cannot be exported"
    assert problem.hint == "write it as the expression 'len(result) > 2'"


def test_a_problem_the_plan_checker_finds_is_placed_at_the_python_line() -> None:
    with pytest.raises(PlanError) as caught:
        export_plan(export_refusals, "type_mismatch")
    [problem] = caught.value.problems
    assert Path(problem.file).resolve() == REFUSALS
    assert problem.line == line_of("    loud = await shout(count)  # type: ignore[arg-type]")
    assert problem.path.startswith("flows.type_mismatch.steps[0].inputs.text")
    assert "integer" in problem.message and "string" in problem.message


def test_a_compute_function_a_plan_cannot_import_is_refused() -> None:
    [(_, path, message)] = problems("uses_local")
    assert path == "functions.local.call"
    assert message == "compute function 'local' is defined inside another function: a plan cannot import it"


def test_stratum_export_writes_a_plan_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "plans" / "review.stratum.yaml"
    assert main(["export", "examples.code_review", "-o", str(output)]) == 0
    assert "wrote" in capsys.readouterr().err
    plan = load_plan(output)
    assert set(plan.flows) == {"review_code", "ship_or_hold"}
    assert output.read_text(encoding="utf-8").startswith("# Exported from the Python module examples.code_review")
    assert main(["validate", str(output)]) == 0


def test_stratum_export_prints_every_problem_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "digest.stratum.yaml"
    assert main(["export", "examples.digest", "-o", str(output)]) == 1
    err = capsys.readouterr().err
    assert "functions.summarize.ensure[0]: a Python callable" in err and "nothing written (4 problems)" in err
    assert not output.exists()
    assert main(["export", "no_such_module_here"]) == 2
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err
    assert main(["export", "examples.support_ticket:classify"]) == 0
    assert "mode: infer" in capsys.readouterr().out
