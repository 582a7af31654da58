"""Finding agent processes from the outside: by the environment the process backend gives them
(`HIVE_AGENT_NAME`, `HIVE_AGENT_SOCKET`). Plain functions, shared by the tests and the chaos
harness (which `bench/chaos.py` also runs)."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """The process exists and is neither a zombie nor dead."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def agent_pids(run_dir: Path, name: str | None = None) -> list[int]:
    """Live agent processes of the daemon whose run dir is `run_dir` (only `name`'s if given)."""
    prefix = str(run_dir).encode() + b"/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(kv.split(b"=", 1) for kv in raw.split(b"\0") if b"=" in kv)
        agent = env.get(b"HIVE_AGENT_NAME")
        if not agent or not env.get(b"HIVE_AGENT_SOCKET", b"").startswith(prefix):
            continue
        if (name is None or agent == name.encode()) and alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids
