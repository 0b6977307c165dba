"""The approval card: an MCP Apps (`io.modelcontextprotocol/ui`) view that lets a person answer a paused run.

Hosts that render MCP Apps (Claude web and Desktop, VS Code, Cursor, ChatGPT, Goose, ...) show a `ui://` HTML
resource for a tool whose `_meta.ui.resourceUri` names it, and hand it the tool's result. The card reads the run
handle of a paused result (`structuredContent.stratum_run.review`: question, the decision contract's fields, the
step's context), shows a form for it, checks the answer against the contract, and answers by calling
`stratum_resume` through the host bridge (JSON-RPC over postMessage); the server checks the answer again and the
card shows what it says: the next question, the flow's output, or what was wrong with the answer.

Flow tools that may ask a person point to it, and so do `stratum_await` and `stratum_resume`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import mcp.types as types

__all__ = ["APP_MIME_TYPE", "CARD_URI", "card_html", "card_meta", "card_resource", "read_card"]

CARD_URI = "ui://stratum/approval-card"
APP_MIME_TYPE = "text/html;profile=mcp-app"


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
