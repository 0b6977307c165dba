"""MCP completions (`completion/complete`) for the arguments of the resource templates and the prompts.

- `run_id` (the run trace and timeline templates, the `review_run` prompt): recent run ids, newest first;
- `review_id` (the `answer_review` prompt): pending reviews, oldest first (the ones waiting longest);
- `name` / `plan` / `contract` (the plan and contract templates): plan names and, for a plan, its contracts;
- `status` / `flow` (the runs index template): run statuses and served flows;
- a flow prompt's arguments: the values of an `enum` (or true/false for a boolean).

Values start with what the client typed (case-insensitive) and are at most 100, as the protocol allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

import mcp.types as types

from server._catalog import Catalog
from server._prompts import ANSWER_REVIEW_PROMPT, REVIEW_RUN_PROMPT, Prompts
from stratum_core.store import RunStatus, RunStore

__all__ = ["Completions"]

MAX_VALUES = 100  # the protocol's limit per completion
_RUN_TEMPLATES = ("stratum://runs/{run_id}", "stratum://runs/{run_id}/timeline.svg")
_RUNS_SCANNED = 500  # recent runs searched for a prefix


def _matching(values: Iterable[str], prefix: str) -> types.CompleteResult:
    lowered = prefix.lower()
    found = list(dict.fromkeys(value for value in values if value.lower().startswith(lowered)))
    return types.CompleteResult(
        completion=types.Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)
    )


class Completions:
    """Answers completion/complete from the catalog and the run store."""

    def __init__(self, store: RunStore, prompts: Prompts) -> None:
        self.store = store
        self.prompts = prompts

    def complete(self, catalog: Catalog, params: types.CompleteRequestParams) -> types.CompleteResult:
        """Values for the argument being typed; none for what this server does not know."""
        name, value = params.argument.name, params.argument.value
        context: Mapping[str, str] = (params.context.arguments or {}) if params.context is not None else {}
        ref = params.ref
        if isinstance(ref, types.ResourceTemplateReference):
            return self._template(catalog, ref.uri, name, value, context)
        if isinstance(ref, types.PromptReference):
            return self._prompt(catalog, ref.name, name, value)
        return _matching((), value)

    def _template(
        self, catalog: Catalog, uri: str, name: str, value: str, context: Mapping[str, str]
    ) -> types.CompleteResult:
        if uri in _RUN_TEMPLATES and name == "run_id":
            return _matching(self._run_ids(), value)
        if uri == "stratum://plans/{name}" and name == "name":
            return _matching(sorted(catalog.plans), value)
        if uri == "stratum://contracts/{plan}/{contract}":
            if name == "plan":
                return _matching(sorted(n for n, e in catalog.plans.items() if e.plan is not None), value)
            if name == "contract":
                chosen = context.get("plan") or ""
                entries = [catalog.plans[chosen]] if chosen in catalog.plans else list(catalog.plans.values())
                return _matching(sorted({c for e in entries if e.plan is not None for c in e.plan.contracts}), value)
        if uri.startswith("stratum://runs{"):
            if name == "status":
                return _matching(get_args(RunStatus), value)
            if name == "flow":
                return _matching(sorted({tool.flow.name for tool in catalog.tools.values()}), value)
        return _matching((), value)

    def _prompt(self, catalog: Catalog, prompt: str, name: str, value: str) -> types.CompleteResult:
        if prompt == REVIEW_RUN_PROMPT and name == "run_id":
            return _matching(self._run_ids(), value)
        if prompt == ANSWER_REVIEW_PROMPT and name == "review_id":
            pending = self.store.list_reviews(status="pending")
            return _matching((review.review_id for review in pending), value)
        tool = self.prompts.flow_tools(catalog).get(prompt)
        if tool is None:
            return _matching((), value)
        schema: Any = tool.input_schema.get("properties", {}).get(name) or {}
        if "enum" in schema:
            return _matching((str(choice) for choice in schema["enum"]), value)
        if schema.get("type") == "boolean":
            return _matching(("true", "false"), value)
        return _matching((), value)

    def _run_ids(self) -> list[str]:
        return [run.run_id for run in self.store.list_runs(limit=_RUNS_SCANNED).runs]
