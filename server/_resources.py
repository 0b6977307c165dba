"""Runs, plans and contracts as MCP resources.

- `stratum://runs` lists recent runs, newest first (`?limit=N&cursor=C&status=S&flow=F` pages and filters);
- `stratum://runs/{run_id}` is a run's whole trace (steps, attempts, violations, tokens, cost, durations, decisions);
- `stratum://plans/{name}` is a plan file's text; `stratum://contracts/{plan}/{contract}` a contract's JSON Schema.

They are offered as templates and as concrete entries of `resources/list` (Claude Code does not list templates).
A run is reachable only through its id; the list shows summaries, never inputs or outputs.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args
from urllib.parse import parse_qs, urlencode, urlsplit

import mcp.types as types
from mcp.shared.exceptions import MCPError

from server._catalog import Catalog
from server._results import run_uri
from stratum_core.observability import render_timeline_svg
from stratum_core.store import RunRecord, RunStatus, RunStore, StoreError
from stratum_core.store._records import iso_time

__all__ = ["RESOURCE_NOT_FOUND", "RUNS_URI", "Resources"]

RESOURCE_NOT_FOUND = -32002
RUNS_URI = "stratum://runs"
_PAGE = 50
_MAX_PAGE = 500
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_NAME = re.compile(r"^[^/?#]{1,200}$")
_JSON = "application/json"
_CURSOR_PREFIX = "runs:"


def _not_found(uri: str, why: str = "Resource not found") -> MCPError:
    return MCPError(code=RESOURCE_NOT_FOUND, message=why, data={"uri": uri})


def _summary(run: RunRecord) -> dict[str, Any]:
    data = run.model_dump(
        mode="json",
        include={
            "run_id",
            "flow",
            "plan_source",
            "status",
            "created_at",
            "updated_at",
            "finished_at",
            "duration_ms",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "model",
        },
    )
    for key in ("created_at", "updated_at", "finished_at"):
        data[f"{key}_iso"] = iso_time(data[key]) if data[key] is not None else None
    if run.cost_unknown:  # as the trace and `stratum runs` say it: no price for some model, so no total
        data["cost_usd"] = None
    data["cost_unknown"] = run.cost_unknown
    data["uri"] = run_uri(run.run_id)
    if run.error:
        data["error"] = {key: run.error.get(key) for key in ("type", "step_id", "message")}
    return data


def _text(uri: str, text: str, mime: str = _JSON) -> types.ReadResourceResult:
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)])


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


class Resources:
    """Answers resources/list, templates/list and read from the current catalog and the run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def templates(self) -> types.ListResourceTemplatesResult:
        """The URI templates: run traces and timelines, the runs index, plans and contract schemas."""
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template="stratum://runs/{run_id}/timeline.svg",
                    name="run-timeline",
                    title="Timeline of a run",
                    description="A picture of one run: steps as bars on a time axis, parallel branches side by "
                    "side, retries and waits for people marked, tokens and cost per step.",
                    mime_type="image/svg+xml",
                ),
                types.ResourceTemplate(
                    uri_template="stratum://runs/{run_id}",
                    name="run-trace",
                    title="Trace of a run",
                    description="Everything recorded about one run: steps, attempts, violations, tokens, cost, "
                    "durations and human decisions.",
                    mime_type=_JSON,
                ),
                types.ResourceTemplate(
                    uri_template="stratum://runs{?limit,cursor,status,flow}",
                    name="runs",
                    title="Recent runs",
                    description="Runs newest first, with their status; page with limit and cursor.",
                    mime_type=_JSON,
                ),
                types.ResourceTemplate(
                    uri_template="stratum://plans/{name}",
                    name="plan",
                    title="Plan text",
                    description="The text of a plan file served by this server.",
                    mime_type="application/yaml",
                ),
                types.ResourceTemplate(
                    uri_template="stratum://contracts/{plan}/{contract}",
                    name="contract-schema",
                    title="Contract JSON Schema",
                    description="The JSON Schema (2020-12) a contract of a plan compiles to.",
                    mime_type="application/schema+json",
                ),
            ]
        )

    def list(self, catalog: Catalog, cursor: str | None) -> types.ListResourcesResult:
        """The runs index, plans and contracts (first page only), then recent runs, one store page at a time."""
        resources: list[types.Resource] = []
        store_cursor: str | None = None
        if cursor:
            if not cursor.startswith(_CURSOR_PREFIX):
                raise MCPError(code=types.INVALID_PARAMS, message="Invalid cursor")
            store_cursor = cursor[len(_CURSOR_PREFIX) :]
        else:
            resources.append(
                types.Resource(
                    uri=RUNS_URI,
                    name="runs",
                    title="Recent runs",
                    description="Runs newest first, with their status and a link to each trace.",
                    mime_type=_JSON,
                )
            )
            for name, entry in sorted(catalog.plans.items()):
                state = "" if entry.plan is not None else " (not served: it does not load; read it for the errors)"
                resources.append(
                    types.Resource(
                        uri=f"stratum://plans/{name}",
                        name=f"plan-{name}",
                        title=f"Plan {entry.path.name}",
                        description=f"The plan file {entry.path.name}{state}.",
                        mime_type="application/yaml",
                    )
                )
                if entry.plan is not None:
                    resources.extend(
                        types.Resource(
                            uri=f"stratum://contracts/{name}/{contract}",
                            name=f"contract-{name}-{contract}",
                            title=f"Contract {contract} of {entry.path.name}",
                            mime_type="application/schema+json",
                        )
                        for contract in entry.plan.contracts
                    )
        try:
            page = self.store.list_runs(limit=_PAGE, cursor=store_cursor)
        except StoreError as e:
            raise MCPError(code=types.INVALID_PARAMS, message="Invalid cursor") from e
        resources.extend(
            types.Resource(
                uri=run_uri(run.run_id),
                name=f"run-{run.run_id}",
                title=f"Run of {run.flow} ({run.status})",
                description=f"Trace of a run of the flow '{run.flow}', {run.status}.",
                mime_type=_JSON,
            )
            for run in page.runs
        )
        next_cursor = _CURSOR_PREFIX + page.next_cursor if page.next_cursor else None
        return types.ListResourcesResult(resources=resources, next_cursor=next_cursor)

    def read(self, catalog: Catalog, uri: str) -> types.ReadResourceResult:
        """The contents of one resource; an unknown one is error -32002."""
        parts = urlsplit(uri)
        if parts.scheme != "stratum":
            raise _not_found(uri)
        host, path = parts.netloc, parts.path.strip("/")
        segments = path.split("/") if path else []
        if host == "runs" and not segments:
            return _text(uri, _dumps(self._runs_index(uri, parts.query)))
        if host == "runs" and len(segments) == 2 and segments[1] == "timeline.svg" and _RUN_ID.match(segments[0]):
            trace = self.store.get_trace(segments[0])
            if trace is None:
                raise _not_found(uri, "No run with this id")
            return _text(uri, render_timeline_svg(trace), "image/svg+xml")
        if host == "runs" and len(segments) == 1 and not parts.query and _RUN_ID.match(segments[0]):
            trace = self.store.get_trace(segments[0])
            if trace is None:
                raise _not_found(uri, "No run with this id")
            return _text(uri, _dumps(trace.to_json_dict()))
        if host == "plans" and len(segments) == 1 and _NAME.match(segments[0]):
            entry = catalog.plans.get(segments[0])
            if entry is None:
                raise _not_found(uri, "No plan with this name")
            text = (
                entry.text
                if entry.error is None
                else f"{entry.text}\n# --- not served ---\n# " + (entry.error.replace("\n", "\n# "))
            )
            return _text(uri, text, "application/yaml")
        if host == "contracts" and len(segments) == 2:
            schema = catalog.contract_schema(segments[0], segments[1])
            if schema is None:
                raise _not_found(uri, "No such contract")
            return _text(uri, _dumps(schema), "application/schema+json")
        raise _not_found(uri)

    def _runs_index(self, uri: str, query: str) -> dict[str, Any]:
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        unknown = sorted(set(params) - {"limit", "cursor", "status", "flow"})
        if unknown:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown query parameter(s): {', '.join(unknown)}")
        try:
            limit = min(max(int(params.get("limit", _PAGE)), 1), _MAX_PAGE)
        except ValueError:
            raise MCPError(code=types.INVALID_PARAMS, message="limit must be an integer") from None
        status = params.get("status")
        if status is not None and status not in get_args(RunStatus):
            raise MCPError(code=types.INVALID_PARAMS, message=f"status must be one of {', '.join(get_args(RunStatus))}")
        try:
            page = self.store.list_runs(
                limit=limit,
                cursor=params.get("cursor"),
                status=status,  # type: ignore[arg-type]
                flow=params.get("flow"),
            )
        except StoreError as e:
            raise MCPError(code=types.INVALID_PARAMS, message="Invalid cursor") from e
        next_uri = None
        if page.next_cursor:
            query_next = {"limit": limit, "cursor": page.next_cursor}
            query_next.update({key: params[key] for key in ("status", "flow") if key in params})
            next_uri = f"{RUNS_URI}?{urlencode(query_next)}"
        return {
            "runs": [_summary(run) for run in page.runs],
            "next_cursor": page.next_cursor,
            "next": next_uri,
        }
