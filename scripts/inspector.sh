#!/usr/bin/env bash
# The MCP Inspector CLI (npm @modelcontextprotocol/inspector 2.12.0, Node 22) spawns `stratum serve` over stdio,
# lists the tools, calls one flow, and calls a flow that pauses for a person (a pause is not an error: exit 0);
# exits non-zero if any fails or answers something unexpected.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_node22.sh
ensure_node22
npm_tool mcp-inspector @modelcontextprotocol/inspector@2.12.0
inspector="$PWD/.cache/mcp-inspector/node_modules/.bin/mcp-inspector"
export LITELLM_OFFLINE_MODE=true LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
serve=("$PWD/.venv/bin/stratum" serve --plans tests/server/plans --store :memory: --poll 0)

tools="$("$inspector" --cli "${serve[@]}" --method tools/list --strict)"
for name in echo two_steps approve_text stratum_resume; do
    grep -q "\"name\": \"$name\"" <<<"$tools" || { echo "tools/list lacks $name:" >&2; echo "$tools" >&2; exit 1; }
done
echo "tools/list: $(grep -c '"inputSchema"' <<<"$tools") tools, schemas portable (--strict)"

call="$("$inspector" --cli "${serve[@]}" --method tools/call --tool-name echo --tool-arg text=inspector)"
.venv/bin/python - "$call" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
assert result.get("isError") is False, result
assert result["structuredContent"] == {"text": "inspector", "length": 9}, result
assert json.loads(result["content"][0]["text"]) == result["structuredContent"], result
assert result["content"][1]["uri"].startswith("stratum://runs/"), result
print("tools/call echo:", json.dumps(result["structuredContent"]))
PY

paused="$("$inspector" --cli "${serve[@]}" --method tools/call --tool-name approve_text --tool-arg text=later)"
.venv/bin/python - "$paused" <<'PY'
import json, sys
result = json.loads(sys.argv[1])
assert result.get("isError") is False, result
handle = result["structuredContent"]["stratum_run"]
assert handle["status"] == "paused" and handle["waiting_for"] == "person", result
assert handle["review"]["question"] == "Approve this text?", result
assert result["content"][0]["text"].startswith("PAUSED (not failed)"), result
print("tools/call approve_text (pauses for a person):", handle["status"], handle["review"]["review_id"])
PY
