"""MCP prompts: one per flow (what it does and what it takes), one to review a run, one to answer a pending review.

- `<tool name>` (one per served flow): explains the flow (description, inputs with their types and whether they
  are required, output, steps, whether it asks a person) and asks the model to call the tool; the flow's inputs are
  the prompt's arguments, all optional (the model asks for what is missing).
- `review_run` (`run_id`): a run's outcome, steps, error and rejected attempts, with a link to its full trace; asks
  the model to explain what happened and what to change.
- `answer_review` (`review_id`): a decision a paused run waits for, and how to answer it with `stratum_resume`.

Clients such as Claude Code offer prompts as slash commands (`/mcp__stratum__review_run`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mcp.types as types
from mcp.shared.exceptions import MCPError

from server._catalog import Catalog, FlowTool
from server._results import run_uri
from stratum_core.cli._runs import run_details
from stratum_core.plan import CallStep, Plan, Step
from stratum_core.store import RunStore

__all__ = ["ANSWER_REVIEW_PROMPT", "REVIEW_RUN_PROMPT", "Prompts"]

REVIEW_RUN_PROMPT = "review_run"
ANSWER_REVIEW_PROMPT = "answer_review"
_BUILTIN = (REVIEW_RUN_PROMPT, ANSWER_REVIEW_PROMPT)
_RESUME_TOOL = "stratum_resume"


def _type_words(schema: Mapping[str, Any]) -> str:
    """A JSON Schema fragment in a few words: 'string, one of a, b', 'integer >= 0', 'Customer (a record)'."""
    if "$ref" in schema:
        return f"{str(schema['$ref']).rsplit('/', 1)[-1]} (a record)"
    properties = schema.get("properties")
    if schema.get("type") == "object" and isinstance(properties, Mapping) and properties:
        required = set(schema.get("required", []))
        fields = ", ".join(f"{name}{'' if name in required else '?'}" for name in properties)
        return f"{schema.get('title') or 'a record'} {{{fields}}}"
    kind = schema.get("type", "any")
    words = " or ".join(kind) if isinstance(kind, list) else str(kind)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        words = f"list of {_type_words(schema['items'])}"
    if "enum" in schema:
        words += ", one of " + ", ".join(json.dumps(value) for value in schema["enum"])
    for key, sign in (("minimum", ">="), ("maximum", "<="), ("minLength", "length >="), ("maxLength", "length <=")):
        if key in schema:
            words += f", {sign} {schema[key]}"
    return words


def _argument_value(text: str, schema: Mapping[str, Any]) -> Any:
    """A prompt argument (always text) as the flow input it stands for: JSON for non-strings, else the text."""
    if schema.get("type") == "string":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _step_words(plan: Plan, step: Step) -> str:
    """What a step is: 'infer draft_reply', 'human approve', 'flow write_report', 'parallel', ..."""
    if isinstance(step, CallStep):
        if step.flow is not None:
            return f"flow {step.flow}"
        fn = plan.functions.get(step.target)
        return f"{fn.mode} {step.target}" if fn is not None else step.target
    return step.kind


def _user(text: str) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))


class Prompts:
    """Answers prompts/list and prompts/get from the current catalog and the run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def flow_tools(self, catalog: Catalog) -> dict[str, FlowTool]:
        """The flows offered as prompts, by prompt name (a flow named like a built-in prompt has none)."""
        return {name: tool for name, tool in sorted(catalog.tools.items()) if name not in _BUILTIN}

    def list(self, catalog: Catalog) -> types.ListPromptsResult:
        """A prompt per flow, then the run review and the review answer prompts."""
        prompts = [
            types.Prompt(
                name=name,
                title=f"Run: {tool.tool.title or name}",
                description=f"Explain the flow '{tool.flow.name}' and its inputs, then run it with the tool '{name}'.",
                arguments=[
                    types.PromptArgument(
                        name=field,
                        description=str(schema.get("description") or _type_words(schema)),
                        required=False,
                    )
                    for field, schema in tool.input_schema.get("properties", {}).items()
                ],
            )
            for name, tool in self.flow_tools(catalog).items()
        ]
        prompts.append(
            types.Prompt(
                name=REVIEW_RUN_PROMPT,
                title="Review a run",
                description="Explain what happened in a run (its steps, retries, violations, error) and what to "
                "change.",
                arguments=[types.PromptArgument(name="run_id", description="the run to review", required=True)],
            )
        )
        prompts.append(
            types.Prompt(
                name=ANSWER_REVIEW_PROMPT,
                title="Answer a pending review",
                description="Show the decision a paused run waits for and answer it with stratum_resume.",
                arguments=[types.PromptArgument(name="review_id", description="the pending review", required=True)],
            )
        )
        return types.ListPromptsResult(prompts=prompts)

    def get(self, catalog: Catalog, name: str, arguments: Mapping[str, str] | None) -> types.GetPromptResult:
        """The messages of one prompt; an unknown prompt, run or review, or a missing argument, is invalid params."""
        arguments = dict(arguments or {})
        if name == REVIEW_RUN_PROMPT:
            return self._review_run(self._required(arguments, "run_id"))
        if name == ANSWER_REVIEW_PROMPT:
            return self._answer_review(self._required(arguments, "review_id"))
        tool = self.flow_tools(catalog).get(name)
        if tool is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {name}")
        return self._flow(tool, arguments)

    @staticmethod
    def _required(arguments: Mapping[str, str], key: str) -> str:
        value = (arguments.get(key) or "").strip()
        if not value:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Missing required argument: {key}")
        return value

    def _flow(self, tool: FlowTool, arguments: Mapping[str, str]) -> types.GetPromptResult:
        schema = tool.input_schema
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown argument(s): {', '.join(unknown)}")
        flow, plan = tool.flow, tool.plan
        lines = [f"Run the Stratum flow '{flow.name}' with the tool `{tool.name}` (plan {tool.path.name})."]
        about = flow.description or plan.description
        if about:
            lines += ["", f"What it does: {about.strip()}"]
        lines += ["", "Inputs:"]
        for field, field_schema in properties.items():
            need = "required" if field in required else "optional"
            note = f": {field_schema['description']}" if field_schema.get("description") else ""
            lines.append(f"- {field} ({_type_words(field_schema)}, {need}){note}")
        if not properties:
            lines.append("- none")
        if tool.output_schema is not None:
            if tool.wraps_output:
                inner = tool.output_schema.get("properties", {}).get("result", {})
                lines += ["", f'Output: {_type_words(inner)} (answered as {{"result": ...}})']
            else:
                lines += ["", f"Output: {_type_words(tool.output_schema)}"]
        steps = ", ".join(f"{step.id} ({_step_words(plan, step)})" for step in flow.steps)
        lines += ["", f"Steps: {steps}."]
        if tool.tool.description and "ask a person" in tool.tool.description:
            lines.append("It may ask a person to decide, and pause until they answer.")
        given = {key: _argument_value(value, properties[key]) for key, value in arguments.items() if value != ""}
        missing = sorted(required - set(given))
        lines.append("")
        if given:
            lines.append(f"Arguments given: {json.dumps(given, ensure_ascii=False)}")
        if missing:
            lines.append(f"Ask me for {', '.join(missing)} first, then call `{tool.name}`.")
        else:
            lines.append(f"Call `{tool.name}` with these arguments and show me its answer and the run's trace link.")
        return types.GetPromptResult(description=f"Run the flow '{flow.name}'", messages=[_user("\n".join(lines))])

    def _review_run(self, run_id: str) -> types.GetPromptResult:
        trace = self.store.get_trace(run_id)
        if trace is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"No run with id {run_id!r}")
        run = trace.run
        lines = [
            f"Review run {run.run_id} of the Stratum flow '{run.flow}' ({run.status}). Explain what happened, step "
            "by step. Where a step failed or was retried, say which condition was violated and with which values, "
            "and suggest what to change: the input, the plan (its contract, ensure, retries, budget) or the model.",
            "",
            "Steps:",
        ]
        for step in trace.steps:
            took = f", {step.duration_ms:.0f} ms" if step.duration_ms is not None else ""
            tries = f", {step.attempts} attempt{'s' if step.attempts != 1 else ''}" if step.attempts else ""
            lines.append(f"- {step.step_id} ({step.kind}): {step.status}{tries}{took}")
        lines += ["", *run_details(trace), "", f"The whole trace is the resource {run_uri(run.run_id)}."]
        link = types.ResourceLink(
            type="resource_link",
            uri=run_uri(run.run_id),
            name=f"run-{run.run_id}",
            title=f"Trace of run {run.run_id}",
            mime_type="application/json",
        )
        return types.GetPromptResult(
            description=f"Review run {run.run_id} ({run.flow}, {run.status})",
            messages=[_user("\n".join(lines)), types.PromptMessage(role="user", content=link)],
        )

    def _answer_review(self, review_id: str) -> types.GetPromptResult:
        review = self.store.get_review(review_id)
        if review is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"No review with id {review_id!r}")
        request = review.request or {}
        context = json.dumps(request.get("context") or {}, indent=2, ensure_ascii=False, default=str)
        schema = json.dumps(request.get("schema") or {}, ensure_ascii=False)
        lines = [
            f"Run {review.run_id} waits for a person to decide (review {review.review_id}, step '{review.step_id}', "
            f"{review.status}).",
            "",
            f"Question: {review.question}",
            "",
            f"What they decide on:\n{context}",
            "",
            f"The answer must match this JSON Schema: {schema}",
        ]
        if review.status == "pending":
            lines += [
                "",
                "Show me the question and what it is about, ask me for my decision, then answer it with the tool "
                f'`{_RESUME_TOOL}`: review_id="{review.review_id}" and answer=<my decision as JSON> (or '
                'action="decline" if I say no). The run then goes on.',
            ]
        else:
            lines += ["", f"It is already {review.status}: tell me how it was answered ({review.action or 'none'})."]
        return types.GetPromptResult(
            description=f"Answer review {review.review_id}", messages=[_user("\n".join(lines))]
        )
