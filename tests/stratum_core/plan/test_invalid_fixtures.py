# ruff: noqa: E501  (snapshot lines are whole problem lines)
"""Every invalid fixture yields exactly its expected problems, located (file:line:col: path: message (hint)).

One broken plan per kind of error, named after it; the expected lines are snapshots (inline-snapshot), so a changed
message shows up as a diff here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inline_snapshot import snapshot

from stratum_core.errors import PlanError
from stratum_core.plan import load_plan

FIXTURES = Path(__file__).parents[2] / "fixtures" / "invalid"

EXPECTED = {
    "optional_read": snapshot(
        [
            "optional_read.stratum.yaml:16:12: functions.shout.expr: expr: r.tag may be absent (field 'tag' is optional) (check `r.tag is not None` or `'tag' in r` first, or use r.get('tag'))",
            "optional_read.stratum.yaml:31:12: functions.upper.expr: expr: s may be None (a string or None), and calling .upper() needs a value (check `s is not None` first)",
            "optional_read.stratum.yaml:37:51: flows.main.steps[1].inputs.tag: $.steps.m.output.tag: cannot feed input 'tag' (a string): it may be absent, and a string is required (make it optional (required: false) where it is bound, or give the field a default)",
            "optional_read.stratum.yaml:38:52: flows.main.steps[2].inputs.tag: $.input.hint: cannot feed input 'tag' (a string): it may be absent, and a string is required (make it optional (required: false) where it is bound, or give the field a default)",
        ]
    ),
    "unsafe_index": snapshot(
        [
            "unsafe_index.stratum.yaml:14:37: functions.tag.ensure[1]: ensure: result.tags[0]: result.tags may have fewer than 1 item (a list of strings without minItems: 1) (check `len(result.tags) > 0` first, or declare minItems: 1)",
            "unsafe_index.stratum.yaml:19:12: functions.first.expr: expr: xs[0]: xs may have fewer than 1 item (a list of strings without minItems: 1) (check `len(xs) > 0` first, or declare minItems: 1)",
            "unsafe_index.stratum.yaml:31:50: flows.main.steps[2].inputs.text: $.steps.t.output.tags[0]: the list may have fewer than 1 item (a list of strings without minItems: 1) (declare minItems: 1 on the list, or bind the whole list)",
        ]
    ),
    "constraints_not_contained": snapshot(
        [
            "constraints_not_contained.stratum.yaml:41:25: flows.main.steps[1].inputs.level: $.steps.r.output.score: cannot feed input 'level' (an integer): an integer in 0..100 may be above the maximum of 10",
            "constraints_not_contained.stratum.yaml:41:56: flows.main.steps[1].inputs.label: $.steps.r.output.label: cannot feed input 'label' (a string): a string in {'low', 'mid', 'high', 'unknown'} may be a value outside {'low', 'mid', 'high'}",
            "constraints_not_contained.stratum.yaml:41:87: flows.main.steps[1].inputs.notes: $.steps.r.output.notes: cannot feed input 'notes' (a list of strings): a list of strings of 0..10 items may have more than 3 items",
            "constraints_not_contained.stratum.yaml:41:118: flows.main.steps[1].inputs.title: $.steps.r.output.title: cannot feed input 'title' (a string): a string may have more than 20 characters",
            "constraints_not_contained.stratum.yaml:42:46: flows.main.steps[2].inputs.level: $.steps.r.output.score: cannot feed input 'level' (an integer): an integer in 0..100 may be above the maximum of 10",
            "constraints_not_contained.stratum.yaml:43:13: flows.main.result: $.steps.r.output.score: cannot feed the flow's output (an integer): an integer in 0..100 may be above the maximum of 10",
        ]
    ),
    "expression_types": snapshot(
        [
            "expression_types.stratum.yaml:8:10: functions.mix.given[0]: given: unsupported operand types for +: a string and an integer (name + n) (convert with str(...), int(...) or float(...))",
            "expression_types.stratum.yaml:9:10: functions.mix.given[1]: given: cannot compare a string with an integer (name > n) (convert with str(...), int(...) or float(...))",
            "expression_types.stratum.yaml:10:14: functions.mix.given[2]: given: len() takes text, a list or a record, not an integer",
            "expression_types.stratum.yaml:11:10: functions.mix.given[3]: given: text is a string, which has no method 'index' (methods of a string: capitalize, count, endswith, find, isalnum, isalpha, isdigit, islower, isspace, isupper, join, lower, lstrip, replace, rstrip, split, startswith, strip, title, upper)",
            "expression_types.stratum.yaml:12:10: functions.mix.given[4]: given: n is an integer, which has no method 'upper' (methods of an integer: none)",
            "expression_types.stratum.yaml:13:14: functions.mix.given[5]: given: sum() cannot add text (use ''.join(...))",
        ]
    ),
    "expr_wrong_type": snapshot(
        [
            "expr_wrong_type.stratum.yaml:10:11: functions.size.expr: expr: an integer cannot feed the output (a string)",
            "expr_wrong_type.stratum.yaml:15:11: functions.named.expr: expr: a record {name, score} cannot feed the output (Named): a record {name, score} has field 'score', which Named does not have (a record feeds a type only with the fields it declares)",
        ]
    ),
    "record_width": snapshot(
        [
            "record_width.stratum.yaml:25:48: flows.main.steps[1].inputs.who: $.steps.s.output: Scored cannot feed input 'who' (Named): Scored has field 'score', which Named does not have (a record feeds a type only with the fields it declares)",
            "record_width.stratum.yaml:26:13: flows.main.result: $.steps.s.output is Scored, but the flow's output is Named",
        ]
    ),
    "constant_bombs": snapshot(
        [
            "constant_bombs.stratum.yaml:9:10: functions.check.ensure[0]: ensure: 9**9**9 fails whenever it runs: integer is too large: at least 1162261468 bits (limit 4096) (it reads no data, so it was evaluated when the plan was checked)",
            "constant_bombs.stratum.yaml:10:28: functions.check.ensure[1]: ensure: 'a' * 10**10 fails whenever it runs: text is too long: 10000000000 characters (limit 100000) (it reads no data, so it was evaluated when the plan was checked)",
            "constant_bombs.stratum.yaml:11:14: functions.check.ensure[2]: ensure: range(10**12) fails whenever it runs: range is too long: 1000000000000 items (limit 10000) (it reads no data, so it was evaluated when the plan was checked)",
            "constant_bombs.stratum.yaml:12:32: functions.check.ensure[3]: ensure: range(10**9) fails whenever it runs: range is too long: 1000000000 items (limit 10000) (it reads no data, so it was evaluated when the plan was checked)",
            "constant_bombs.stratum.yaml:13:18: functions.check.ensure[4]: ensure: 10**1000000 fails whenever it runs: integer is too large: at least 3000001 bits (limit 4096) (it reads no data, so it was evaluated when the plan was checked)",
            "constant_bombs.stratum.yaml:14:24: functions.check.ensure[5]: ensure: len(result) / 0: division by zero",
            "constant_bombs.stratum.yaml:15:30: functions.check.ensure[6]: ensure: [1, 2][5]: [1, 2] may have fewer than 6 items (a list of integers without minItems: 6) (check `len([1, 2]) > 5` first, or declare minItems: 6)",
        ]
    ),
    "adaptive_wrong_paths": snapshot(
        [
            "adaptive_wrong_paths.stratum.yaml:20:20: functions.sentiment.dispatch: dispatch: unknown name 'body' (dispatch sees text)",
            "adaptive_wrong_paths.stratum.yaml:21:14: functions.sentiment.compute: 'classify' is an infer function (compute: names a compute function)",
            "adaptive_wrong_paths.stratum.yaml:22:12: functions.sentiment.infer: 'classify' takes inputs (body), not (text) (both paths take the same inputs)",
            "adaptive_wrong_paths.stratum.yaml:28:14: functions.sentiment2.compute: 'keywords' returns a string, not Sentiment",
            "adaptive_wrong_paths.stratum.yaml:29:12: functions.sentiment2.infer: unknown function 'clasify' (did you mean 'classify'?)",
        ]
    ),
    "bad_mode": snapshot(
        [
            "bad_mode.stratum.yaml:4:11: functions.classify.mode: expected one of 'infer', 'compute', 'human', 'adaptive', got 'infr' (did you mean 'infer'?)",
        ]
    ),
    "branch_reference": snapshot(
        [
            "branch_reference.stratum.yaml:16:58: flows.main.steps[0].parallel.steps[1].inputs.text: $.steps.left.output: 'left' is a branch of this group (branches of a group run at the same time and cannot use each other's output)",
            "branch_reference.stratum.yaml:19:24: flows.main.steps[1].inputs.text: $.steps.right.output: 'right' is a branch of step 'group' (use $.steps.group.output instead)",
        ]
    ),
    "budget_not_positive": snapshot(
        [
            "budget_not_positive.stratum.yaml:7:18: functions.classify.budget.ms: must be greater than 0, got 0",
            "budget_not_positive.stratum.yaml:7:26: functions.classify.budget.usd: must be greater than 0, got -0.5",
        ]
    ),
    "compute_call_not_importable": snapshot(
        [
            "compute_call_not_importable.stratum.yaml:7:11: functions.missing_module.call: cannot import 'no_such_tools': no module named 'no_such_tools' (modules are looked up beside the plan file, then on sys.path)",
            "compute_call_not_importable.stratum.yaml:12:11: functions.missing_function.call: 'fixture_tools' has no attribute 'ecoh' (did you mean 'echo'?)",
            "compute_call_not_importable.stratum.yaml:17:11: functions.not_callable.call: 'fixture_tools:GREETING' is not callable",
            "compute_call_not_importable.stratum.yaml:22:11: functions.private.call: 'fixture_tools:_secret' names a private attribute (call targets must be public names)",
            "compute_call_not_importable.stratum.yaml:27:11: functions.malformed.call: not an import path, got 'fixture_tools.echo' (write package.module:function)",
        ]
    ),
    "compute_without_implementation": snapshot(
        [
            "compute_without_implementation.stratum.yaml:3:3: functions.run_tests: a compute function needs 'call' or 'expr' (only reference plans, versions 0.1 to 0.3, leave compute functions to the calling agent)",
            "compute_without_implementation.stratum.yaml:13:5: functions.both: a compute function has 'call' or 'expr', not both",
        ]
    ),
    "debate_agent_not_infer": snapshot(
        [
            "debate_agent_not_infer.stratum.yaml:26:27: flows.main.steps[0].debate.agents[0]: 'optimist' takes input 'mood', which a debate agent is not given (a debate agent gets topic, round, history, others, previous_arguments)",
            "debate_agent_not_infer.stratum.yaml:26:37: flows.main.steps[0].debate.agents[1]: debate agent 'calculator' is a compute function (agents must be infer functions)",
            "debate_agent_not_infer.stratum.yaml:26:49: flows.main.steps[0].debate.agents[2]: unknown function 'pessimist' (did you mean 'optimist'?)",
            "debate_agent_not_infer.stratum.yaml:26:68: flows.main.steps[0].debate.topic: $.input.cod: flow 'main' has no input 'cod' (did you mean 'code'?)",
            "debate_agent_not_infer.stratum.yaml:26:93: flows.main.steps[0].debate.synthesize: 'judge' takes input 'verdict', which synthesize is not given (synthesize gets topic, history, arguments, converged)",
            "debate_agent_not_infer.stratum.yaml:26:113: flows.main.steps[0].debate.converge_on: converge_on: contract 'Argument' has no field 'stance'",
        ]
    ),
    "dependency_cycle": snapshot(
        [
            "dependency_cycle.stratum.yaml:12:13: flows.main.steps[0]: dependency cycle: a -> c -> b -> a (each step waits for the next)",
        ]
    ),
    "duplicate_step_id": snapshot(
        [
            "duplicate_step_id.stratum.yaml:19:20: flows.main.steps[1].parallel.steps[1]: duplicate step id 'first' (first used on line 12)",
            "duplicate_step_id.stratum.yaml:20:13: flows.main.steps[2]: duplicate step id 'left' (first used on line 18)",
        ]
    ),
    "expression_outside_sandbox": snapshot(
        [
            "expression_outside_sandbox.stratum.yaml:9:10: functions.classify.ensure[0]: ensure: attribute '__subclasses__' is not allowed (names starting with '_' are private)",
            "expression_outside_sandbox.stratum.yaml:10:10: functions.classify.ensure[1]: ensure: method 'system' is not available (allowed methods: str: capitalize, count, endswith, find, isalnum, isalpha, isdigit, islower, isspace, isupper, join, lower, lstrip, replace, rstrip, split, startswith, strip, title, upper; list: count, index; tuple: count, index; dict: get, items, keys, values)",
            "expression_outside_sandbox.stratum.yaml:11:11: functions.classify.ensure[2]: ensure: only named functions and methods can be called",
            "expression_outside_sandbox.stratum.yaml:12:10: functions.classify.ensure[3]: ensure: method 'format' is not available (allowed methods: str: capitalize, count, endswith, find, isalnum, isalpha, isdigit, islower, isspace, isupper, join, lower, lstrip, replace, rstrip, split, startswith, strip, title, upper; list: count, index; tuple: count, index; dict: get, items, keys, values)",
        ]
    ),
    "expression_syntax_error": snapshot(
        [
            "expression_syntax_error.stratum.yaml:8:14: functions.classify.given[0]: given: invalid syntax",
            "expression_syntax_error.stratum.yaml:9:31: functions.classify.ensure[0]: ensure: invalid syntax",
        ]
    ),
    "expression_unknown_name": snapshot(
        [
            "expression_unknown_name.stratum.yaml:12:18: functions.classify.given[0]: given: unknown name 'result' (given sees text)",
            "expression_unknown_name.stratum.yaml:13:15: functions.classify.ensure[0]: ensure: unknown name 'resutl' (did you mean 'result'?)",
            "expression_unknown_name.stratum.yaml:13:42: functions.classify.ensure[1]: ensure: result.confidnce: contract 'Sentiment' has no field 'confidnce' (did you mean 'confidence'?)",
            "expression_unknown_name.stratum.yaml:14:38: functions.classify.refine.until: until: unknown name 'tex' (did you mean 'text'?)",
            "expression_unknown_name.stratum.yaml:14:64: functions.classify.refine.feedback: feedback: unknown name 'hint' (feedback sees result, text)",
            "expression_unknown_name.stratum.yaml:19:12: functions.route.expr: expr: sentiment.labl: contract 'Sentiment' has no field 'labl' (did you mean 'label'?)",
            "expression_unknown_name.stratum.yaml:29:60: flows.triage.steps[1].when: when: input.txt: the flow has no input 'txt' (did you mean 'text'?)",
            "expression_unknown_name.stratum.yaml:29:80: flows.triage.steps[1].when: when: steps.sentimnt.output: unknown step 'sentimnt' (did you mean 'sentiment'?)",
        ]
    ),
    "for_each_not_a_list": snapshot(
        [
            "for_each_not_a_list.stratum.yaml:13:19: flows.main.steps[0].for_each: for_each needs a list, but $.input.text is a string",
            "for_each_not_a_list.stratum.yaml:17:47: flows.main.steps[1].step.inputs.text: $.item: an integer cannot feed input 'text' (a string)",
        ]
    ),
    "human_decision_not_a_form": snapshot(
        [
            "human_decision_not_a_form.stratum.yaml:13:13: functions.approve.output: decision type 'Review' cannot be asked as a form: field 'reasons' is a list of strings (a form has only string, number, integer, boolean and enum fields)",
            "human_decision_not_a_form.stratum.yaml:13:13: functions.approve.output: decision type 'Review' cannot be asked as a form: field 'reply' is Reply (a form has only string, number, integer, boolean and enum fields)",
            "human_decision_not_a_form.stratum.yaml:17:13: functions.pick.output: the decision (a list of strings) cannot be asked as a form (a decision is a contract of flat fields, or a string, number, integer or boolean)",
        ]
    ),
    "human_options_mismatch": snapshot(
        [
            "human_options_mismatch.stratum.yaml:11:21: functions.approve.options[1]: option 'revise' is not a value of field 'decision' (one of 'send', 'discard')",
            "human_options_mismatch.stratum.yaml:11:29: functions.approve.options[2]: option 3 is not a string (options are the values of field 'decision')",
            "human_options_mismatch.stratum.yaml:13:37: functions.approve.on_timeout.remark: decision type 'Approval' has no field 'remark'",
            "human_options_mismatch.stratum.yaml:18:17: functions.confirm.on_timeout: on_timeout 'no' is not a boolean",
        ]
    ),
    "inputs_unknown_or_missing": snapshot(
        [
            "inputs_unknown_or_missing.stratum.yaml:14:9: flows.main.steps[0]: missing inputs 'code', 'focus' of function 'review'",
            "inputs_unknown_or_missing.stratum.yaml:14:18: flows.main.steps[0].inputs.cod: function 'review' has no input 'cod' (did you mean 'code'?)",
        ]
    ),
    "invalid_name": snapshot(
        [
            "invalid_name.stratum.yaml:3:3: contracts: invalid name 'Ticket Text' (use letters, digits, _ and -, starting with a letter or _)",
        ]
    ),
    "invalid_result": snapshot(
        [
            "invalid_result.stratum.yaml:17:13: flows.main.result: $.steps.echoo.output: unknown step 'echoo' (did you mean 'echo'?)",
            "invalid_result.stratum.yaml:23:13: flows.other.result: not a reference, got 'steps.echo.output' (references start with '$.')",
        ]
    ),
    "invalid_timeout": snapshot(
        [
            "invalid_timeout.stratum.yaml:7:14: functions.approve.timeout: not a duration, got '3 weeks' (write 30s, 5m, 24h or 2d)",
            "invalid_timeout.stratum.yaml:12:14: functions.approve_later.timeout: must be greater than 0, got -5",
        ]
    ),
    "item_outside_for_each": snapshot(
        [
            "item_outside_for_each.stratum.yaml:14:24: flows.main.steps[0].inputs.text: $.item: $.item is only defined in the step of a for_each",
            "item_outside_for_each.stratum.yaml:17:24: flows.main.steps[1].inputs.text: $.steps.echo: not a valid reference (write $.input.NAME, $.steps.ID.output[.FIELD...] or $.item inside a for_each)",
        ]
    ),
    "literal_does_not_fit": snapshot(
        [
            "literal_does_not_fit.stratum.yaml:14:45: flows.main.steps[0].inputs.focus: 'securty' does not fit input 'focus' (a string) (one of 'security', 'style')",
            "literal_does_not_fit.stratum.yaml:14:61: flows.main.steps[0].inputs.depth: 'deep' does not fit input 'depth' (an integer)",
        ]
    ),
    "missing_required_key": snapshot(
        [
            "missing_required_key.stratum.yaml:3:3: functions.classify: missing required key 'intent'",
            "missing_required_key.stratum.yaml:8:3: flows.triage: missing required key 'steps'",
        ]
    ),
    "not_a_mapping": snapshot(
        [
            "not_a_mapping.stratum.yaml:1:1: expected a mapping, got a list",
        ]
    ),
    "quorum_incomplete": snapshot(
        [
            "quorum_incomplete.stratum.yaml:12:5: functions.rate.quorum: quorum needs 'agree_on' (the output field the answers must agree on)",
            "quorum_incomplete.stratum.yaml:12:5: functions.rate.quorum: quorum needs 'threshold' (how many answers must agree)",
            "quorum_incomplete.stratum.yaml:18:30: functions.rate_again.quorum.agree_on: agree_on: contract 'Severity' has no field 'levl' (did you mean 'level'?)",
            "quorum_incomplete.stratum.yaml:18:47: functions.rate_again.quorum.threshold: threshold 4 is more than n (3)",
        ]
    ),
    "require_larger_than_group": snapshot(
        [
            "require_larger_than_group.stratum.yaml:14:20: flows.main.steps[0].parallel.require: require: 3 but the group has 2 steps",
            "require_larger_than_group.stratum.yaml:15:65: flows.main.steps[0].parallel.validate: validate: unknown name 'outputz' (did you mean 'outputs'?)",
            "require_larger_than_group.stratum.yaml:21:20: flows.main.steps[1].parallel.require: must be at least 0, got -1",
        ]
    ),
    "self_reference": snapshot(
        [
            "self_reference.stratum.yaml:14:22: flows.main.steps[0].depends_on[0]: step 'loop' cannot depend on itself",
            "self_reference.stratum.yaml:15:15: flows.main.steps[0].when: when: step 'loop' cannot read its own output",
            "self_reference.stratum.yaml:16:24: flows.main.steps[0].inputs.text: $.steps.loop.output: step 'loop' cannot use its own output",
        ]
    ),
    "step_without_target": snapshot(
        [
            "step_without_target.stratum.yaml:12:9: flows.main.steps[0]: a step needs one of 'function', 'flow', 'parallel', 'race', 'for_each' or 'debate'",
            "step_without_target.stratum.yaml:14:9: flows.main.steps[1]: a step calls a function or a flow, not both",
            "step_without_target.stratum.yaml:18:9: flows.main.steps[2]: a step needs one of 'function', 'flow', 'parallel', 'race', 'for_each' or 'debate'",
            "step_without_target.stratum.yaml:19:9: flows.main.steps[2]: unknown key 'funtion' (did you mean 'function'?)",
        ]
    ),
    "subflow_cycle": snapshot(
        [
            "subflow_cycle.stratum.yaml:12:32: flows.outer: sub-flow cycle: outer -> inner -> outer (a flow cannot call itself, directly or not)",
            "subflow_cycle.stratum.yaml:21:27: flows.selfish: sub-flow cycle: selfish -> selfish (a flow cannot call itself, directly or not)",
        ]
    ),
    "temperature_out_of_range": snapshot(
        [
            "temperature_out_of_range.stratum.yaml:7:18: functions.classify.temperature: must be at most 2, got 2.5",
        ]
    ),
    "type_mismatch": snapshot(
        [
            "type_mismatch.stratum.yaml:27:22: flows.triage.steps[1].inputs.sentiment: $.steps.sentiment.output.label: a string cannot feed input 'sentiment' (Sentiment)",
            "type_mismatch.stratum.yaml:28:18: flows.triage.steps[1].inputs.level: $.input.level: a number cannot feed input 'level' (an integer)",
        ]
    ),
    "unknown_contract": snapshot(
        [
            "unknown_contract.stratum.yaml:6:18: contracts.Ticket.text.type: unknown contract 'strng' (did you mean 'string'?)",
            "unknown_contract.stratum.yaml:7:23: contracts.Ticket.sentiment.type: unknown contract 'Sentimnt' (did you mean 'Sentiment'?)",
            "unknown_contract.stratum.yaml:12:28: functions.classify.input.ticket.type: unknown contract 'Tiket' (did you mean 'Ticket'?)",
            "unknown_contract.stratum.yaml:13:13: functions.classify.output: unknown contract 'Sentimen' (did you mean 'Sentiment'?)",
        ]
    ),
    "unknown_field_reference": snapshot(
        [
            "unknown_field_reference.stratum.yaml:23:24: flows.triage.steps[0].inputs.text: $.input.txt: flow 'triage' has no input 'txt' (did you mean 'text'?)",
            "unknown_field_reference.stratum.yaml:26:24: flows.triage.steps[1].inputs.text: $.steps.sentiment.output.lable: contract 'Sentiment' has no field 'lable' (did you mean 'label'?)",
            "unknown_field_reference.stratum.yaml:29:24: flows.triage.steps[2].inputs.text: $.steps.echo.output.first: a string has no field 'first'",
        ]
    ),
    "unknown_flow": snapshot(
        [
            "unknown_flow.stratum.yaml:16:15: flows.triage.steps[1].flow: unknown flow 'write_reprt' (did you mean 'write_report'?)",
        ]
    ),
    "unknown_function": snapshot(
        [
            "unknown_function.stratum.yaml:13:19: flows.triage.steps[0].function: unknown function 'clasify' (did you mean 'classify'?)",
        ]
    ),
    "unknown_key": snapshot(
        [
            "unknown_key.stratum.yaml:8:5: functions.classify: unknown key 'retires' (did you mean 'retries'?)",
            "unknown_key.stratum.yaml:9:5: functions.classify: unknown key 'question' ('question' is a key of human functions)",
        ]
    ),
    "unknown_step": snapshot(
        [
            "unknown_step.stratum.yaml:20:22: flows.triage.steps[1].depends_on[0]: unknown step 'clasify' (did you mean 'classify'?)",
            "unknown_step.stratum.yaml:21:24: flows.triage.steps[1].inputs.text: $.steps.clasify.output.label: unknown step 'clasify' (did you mean 'classify'?)",
        ]
    ),
    "wrong_type": snapshot(
        [
            "wrong_type.stratum.yaml:7:14: functions.classify.retries: expected an integer, got 'abc'",
            "wrong_type.stratum.yaml:8:14: functions.classify.context: expected a string or a list, got 42",
        ]
    ),
    "wrong_version": snapshot(
        [
            'wrong_version.stratum.yaml:1:10: version: version must be "1", "0.1", "0.2" or "0.3", got 1 (a quoted string)',
        ]
    ),
    "yaml_alias_bomb": snapshot(
        [
            "yaml_alias_bomb.stratum.yaml:7:12: f[1]: the document is too large (more than 250000 values after expanding aliases)",
        ]
    ),
    "yaml_duplicate_key": snapshot(
        [
            "yaml_duplicate_key.stratum.yaml:8:5: functions.classify.retries: duplicate key 'retries' (first given on line 7)",
        ]
    ),
    "yaml_non_string_key": snapshot(
        [
            "yaml_non_string_key.stratum.yaml:4:5: contracts.Score: keys must be strings, got 1 (write '1' in quotes)",
        ]
    ),
    "yaml_syntax_error": snapshot(
        [
            "yaml_syntax_error.stratum.yaml:6:11: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence)",
        ]
    ),
    "yaml_two_documents": snapshot(
        [
            "yaml_two_documents.stratum.yaml:2:1: a plan file holds one YAML document (remove the second '---' document)",
        ]
    ),
}


def _problems(name: str) -> list[str]:
    with pytest.raises(PlanError) as raised:
        load_plan(f"{name}.stratum.yaml")
    return [str(problem) for problem in raised.value.problems]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture_yields_exactly_its_expected_problems(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES)
    assert _problems(name) == EXPECTED[name]


def test_every_invalid_fixture_has_expected_problems() -> None:
    names = {path.name.removesuffix(".stratum.yaml") for path in FIXTURES.glob("*.stratum.yaml")}
    assert names == set(EXPECTED)
