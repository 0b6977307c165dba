#!/usr/bin/env bash
# The official MCP conformance suite (npm @modelcontextprotocol/conformance 0.1.16, Node 22) against
# `stratum serve --http`, started with a bearer token that scripts/conformance/bearer_token.cjs gives the suite's
# client (it has no option for headers). Exits non-zero if any scenario below fails (or those named as arguments).
#
# The suite tests servers over streamable HTTP only, and most of its scenarios call fixture tools, resources and
# prompts of the SDK's "everything" server (test_simple_text, test://static-text, test_simple_prompt, ...). What
# applies to a server without those fixtures, and so must pass here:
#   server-initialize            initialize answers with a valid result
#   ping                         ping answers
#   tools-list                   every flow is a tool with a valid schema
#   logging-set-level            logging/setLevel is answered
#   resources-list               runs, plans and contracts are listed
#   resources-subscribe          resources/subscribe is answered (runs send updates as they progress)
#   resources-unsubscribe        resources/unsubscribe is answered
#   server-sse-multiple-streams  concurrent POST streams work
#   server-sse-polling           SSE resumption: 0 checks apply without an event store (2 SHOULD warnings)
#   dns-rebinding-protection     Host/Origin checks on the local HTTP server
# and two fixture tools that a plan can honestly be (scripts/conformance/conformance.stratum.yaml):
#   json-schema-2020-12          json_schema_2020_12_tool: $schema, $defs, additionalProperties kept in inputSchema
#   tools-call-error             test_error_handling: a failed run is an isError result
# Not applicable (they need the everything server's fixtures, or features Stratum does not offer):
#   tools-call-{simple-text,image,audio,embedded-resource,mixed-content,with-logging,with-progress,sampling,
#   elicitation}, elicitation-sep1034-defaults, elicitation-sep1330-enums (fixture tools with exact contents;
#   a flow answers JSON), resources-read-{text,binary}, resources-templates-read (test:// fixture resources),
#   prompts-* (no prompts), completion-complete (no completions).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_node22.sh
ensure_node22
npm_tool mcp-conformance @modelcontextprotocol/conformance@0.1.16
conformance="$PWD/.cache/mcp-conformance/node_modules/.bin/conformance"

SCENARIOS=(
    server-initialize ping tools-list logging-set-level resources-list resources-subscribe resources-unsubscribe
    server-sse-multiple-streams server-sse-polling dns-rebinding-protection json-schema-2020-12 tools-call-error
)
if [ "$#" -gt 0 ]; then SCENARIOS=("$@"); fi  # `scripts/conformance.sh SCENARIO...` runs only those

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cp tests/server/plans/*.stratum.yaml tests/server/plans/*.py scripts/conformance/*.stratum.yaml "$work/"
export LITELLM_OFFLINE_MODE=true LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
# HTTP always needs a bearer token; the suite's client is given it by a preload (scripts/conformance/bearer_token.cjs).
token="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
.venv/bin/stratum serve --plans "$work" --store :memory: --http 127.0.0.1:0 --poll 0 --token "$token" \
    2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 1 300); do
    url="$(sed -n 's/^stratum: listening on //p' "$work/server.log" | head -1)"
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "stratum serve did not start" >&2; cat "$work/server.log" >&2; exit 1; }
echo "conformance 0.1.16 against $url" >&2
export STRATUM_CONFORMANCE_TOKEN="$token" STRATUM_CONFORMANCE_ORIGIN="${url%/mcp}"
export STRATUM_CONFORMANCE_MODULES="$PWD/.cache/mcp-conformance"
export NODE_OPTIONS="--require $PWD/scripts/conformance/bearer_token.cjs"

failed=()
for scenario in "${SCENARIOS[@]}"; do
    if "$conformance" server --url "$url" --scenario "$scenario" >"$work/$scenario.txt" 2>&1; then
        echo "PASS $scenario ($(grep -o 'Passed: [0-9]*/[0-9]*' "$work/$scenario.txt" | tail -1))"
    else
        echo "FAIL $scenario"
        sed 's/^/    /' "$work/$scenario.txt"
        failed+=("$scenario")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "${#failed[@]} of ${#SCENARIOS[@]} scenarios failed: ${failed[*]}" >&2
    exit 1
fi
echo "all ${#SCENARIOS[@]} applicable scenarios passed"
