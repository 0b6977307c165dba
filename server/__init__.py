"""The MCP server: every flow of a plan as a typed tool."""
