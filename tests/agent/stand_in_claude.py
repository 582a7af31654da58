"""A stand-in `claude` for what the real CLI cannot be made to do on demand.

Usage: stand_in_claude.py MODE [ARG] [claude's own arguments, ignored]
- `hang PIDFILE`: print an init line, start a child that sleeps (its pid in PIDFILE), say
  "child started", then hang (the harness must kill the whole group);
- `garbage`: lines that are not stream-json between good ones, then an OK result;
- `huge`: a 10 MiB line, then an OK turn;
- `die-mid-line`: an init line, then half a line, and exit 1 without its newline.
It reads the prompt from stdin first, as claude does.
"""

import json
import os
import subprocess
import sys
import time

INIT = {"type": "system", "subtype": "init", "session_id": "stand-in", "model": "stand-in-model"}
RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "num_turns": 1,
    "result": "stand-in done",
    "session_id": "stand-in",
    "total_cost_usd": 0.5,
    "usage": {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_read_input_tokens": 2,
        "cache_creation_input_tokens": 1,
    },
}


def out(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    mode = sys.argv[1]
    sys.stdin.read()
    out(INIT)
    if mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open(sys.argv[2] + ".tmp", "w") as f:
            f.write(str(child.pid))
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
        out(
            {
                "type": "assistant",
                "message": {
                    "model": "stand-in-model",
                    "content": [{"type": "text", "text": "child started"}],
                },
                "parent_tool_use_id": None,
            }
        )
        time.sleep(3600)
    elif mode == "garbage":
        sys.stdout.write('this is not json\n[1, 2, 3]\n{"half": \n\n')
        out(
            {
                "type": "assistant",
                "message": {
                    "model": "stand-in-model",
                    "content": [{"type": "text", "text": "still here"}],
                },
                "parent_tool_use_id": None,
            }
        )
        out(RESULT)
    elif mode == "huge":
        sys.stdout.write('{"type": "assistant", "pad": "' + "x" * (10 << 20) + '"}\n')
        out(
            {
                "type": "assistant",
                "message": {
                    "model": "stand-in-model",
                    "content": [{"type": "text", "text": "after the big line"}],
                },
                "parent_tool_use_id": None,
            }
        )
        out(RESULT)
    elif mode == "die-mid-line":
        sys.stdout.write('{"type": "assistant", "message": {"content": [{"type": "te')
        sys.stdout.flush()
        os._exit(1)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
