"""The approval card: an MCP Apps (`io.modelcontextprotocol/ui`) view that lets a person answer a paused run.

Hosts that render MCP Apps (Claude web and Desktop, VS Code, Cursor, ChatGPT, Goose, ...) show a `ui://` HTML
resource for a tool whose `_meta.ui.resourceUri` names it, and hand it the tool's result. The card reads the run
handle of a paused result (`structuredContent.stratum_run.review`: question, the decision contract's fields, the
step's context), shows a form for it, checks the answer against the contract, and answers by calling
`stratum_card_answer` through the host bridge (JSON-RPC over postMessage); the server checks the answer again and
the card shows what it says: the next question, the flow's output, or what was wrong with the answer.

`stratum_card_answer` is visible to the app only (`_meta.ui.visibility: ["app"]`): hosts keep it from the model, so
an answer through it is recorded as a person's (channel `approval_card`), where the agent's own `stratum_resume`
is recorded as the agent's. Flow tools that may ask a person point to the card, and so do `stratum_await` and
`stratum_resume`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import mcp.types as types

__all__ = [
    "APPROVAL_CARD_CHANNEL",
    "APP_MIME_TYPE",
    "CARD_ANSWER_INPUT",
    "CARD_ANSWER_TOOL",
    "CARD_ANSWER_TOOL_DEF",
    "CARD_URI",
    "card_html",
    "card_meta",
    "card_resource",
    "read_card",
]

CARD_URI = "ui://stratum/approval-card"
APP_MIME_TYPE = "text/html;profile=mcp-app"
CARD_ANSWER_TOOL = "stratum_card_answer"
APPROVAL_CARD_CHANNEL = "approval_card"
"""The channel recorded for an answer a person gave in the card."""

CARD_ANSWER_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "review_id": {"type": "string", "minLength": 1, "description": "The review the card shows."},
        "answer": {
            "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "number"}, {"type": "boolean"}],
            "description": "The person's decision, matching the review's decision schema (required to accept).",
        },
        "action": {"type": "string", "enum": ["accept", "decline", "cancel"], "default": "accept"},
        "reviewer": {"type": "string", "description": "Who decided."},
        "rationale": {"type": "string", "description": "Why, in their words."},
    },
    "required": ["review_id"],
    "additionalProperties": False,
}
CARD_ANSWER_TOOL_DEF = types.Tool(
    name=CARD_ANSWER_TOOL,
    title="Answer from the approval card",
    description="The approval card's own tool (app-only): records the person's answer to a review and continues the "
    "run. Agents answer with stratum_resume.",
    input_schema=CARD_ANSWER_INPUT,
    annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False),
    _meta={"ui": {"resourceUri": CARD_URI, "visibility": ["app"]}},
)


@cache
def card_html() -> str:
    """The card's HTML (one self-contained file: no network, no external script)."""
    return resources.files("server").joinpath("approval_card.html").read_text(encoding="utf-8")


def card_meta() -> dict[str, Any]:
    """The `_meta` a tool carries to have hosts render the card with its results."""
    return {"ui": {"resourceUri": CARD_URI}}


def card_resource() -> types.Resource:
    """The card as listed in `resources/list`."""
    return types.Resource(
        uri=CARD_URI,
        name="approval-card",
        title="Stratum approval card",
        description="An MCP Apps view: answer the decision a paused Stratum run waits for.",
        mime_type=APP_MIME_TYPE,
    )


def read_card() -> types.ReadResourceResult:
    """`resources/read` of the card."""
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(
                uri=CARD_URI, mime_type=APP_MIME_TYPE, text=card_html(), _meta={"ui": {"prefersBorder": True}}
            )
        ]
    )
