"""A stand-in for the hive's MCP server (`hive_core.agent.mcp`, written elsewhere), just enough
for the harness tests: a stdio MCP server with one tool, `recv`, whose structured result is the
agent socket's answer (as agent.md says the real one's is). Newline-delimited JSON-RPC."""

import json
import os
import sys

from hive_wire.blocking import call_sync

SOCKET = os.environ["HIVE_AGENT_SOCKET"]
RECV = {
    "name": "recv",
    "description": "Pop messages from your inbox.",
    "inputSchema": {
        "type": "object",
        "properties": {"max": {"type": "integer"}, "wait_seconds": {"type": "integer"}},
    },
}


def answer(req: dict, result: dict) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        method = req.get("method")
        if "id" not in req:
            continue  # a notification
        if method == "initialize":
            answer(
                req,
                {
                    "protocolVersion": req["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "hive", "version": "0"},
                },
            )
        elif method == "tools/list":
            answer(req, {"tools": [RECV]})
        elif method == "tools/call":
            args = req["params"].get("arguments") or {}
            got = call_sync(
                SOCKET,
                {
                    "cmd": "recv",
                    "max": args.get("max", 1),
                    "wait_seconds": args.get("wait_seconds", 0),
                },
            )
            text = "\n---\n".join(f"from: {m['from']}\n\n{m['body']}" for m in got["messages"])
            answer(
                req,
                {
                    "content": [{"type": "text", "text": text or "(empty)"}],
                    "structuredContent": got,
                    "isError": False,
                },
            )
        else:
            answer(req, {})


if __name__ == "__main__":
    main()
