# Sourced by the MCP scripts: Node 22 (the machine's Node may be older) from the npm package `node@22`, installed
# once into .cache/node22, and `npm_tool DIR PACKAGE@VERSION` to install an npm tool into .cache/DIR.
# Needs: npm (any version) on PATH and access to the npm registry the first time.

NODE22_DIR="${NODE22_DIR:-$PWD/.cache/node22}"

ensure_node22() {
    if [ ! -x "$NODE22_DIR/node_modules/.bin/node" ]; then
        echo "installing Node 22 (npm package node@22) into $NODE22_DIR" >&2
        npm install --prefix "$NODE22_DIR" --no-audit --no-fund --loglevel=error node@22 >&2
    fi
    export PATH="$NODE22_DIR/node_modules/.bin:$PATH"
    local major
    major="$(node --version | sed -E 's/^v([0-9]+).*/\1/')"
    if [ "$major" -lt 22 ]; then
        echo "Node 22 is required, found $(node --version)" >&2
        return 1
    fi
}

npm_tool() {  # npm_tool DIR PACKAGE@VERSION: install (once) into .cache/DIR
    local dir="$PWD/.cache/$1" spec="$2"
    local stamp="$dir/.installed-${spec//\//_}"
    if [ ! -f "$stamp" ]; then
        echo "installing $spec into $dir" >&2
        npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$spec" >&2
        touch "$stamp"
    fi
}
