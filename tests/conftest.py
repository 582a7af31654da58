"""Shared fixtures: a real daemon on short temporary directories, talked to over its sockets.

- `dirs`: a short temporary directory (unix socket paths are limited to 107 bytes, and pytest's
  `tmp_path` can be long) with `state/` and `run/` inside;
- `hive`: `serve()` started in the test's nursery with `nursery.start` (so it is ready), shut
  down cleanly at the end of the test;
- `host`, `manager`, `agent_sock`: socket paths;
- `daemon` (sync): `hive-core serve` as a subprocess (`tests.helpers.Daemon`), for kill -9 and
  signal tests; it waits for `READY=1`, never a fixed time.
Helpers (one client, one daemon runner, `ok`, `refused`, `send`) live in `tests/helpers.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from hive_core.app import Hive
from hive_core.daemon import serve
from tests.helpers import Daemon, make_config  # noqa: F401 (fixtures below use them)

# No dashboard unless a test asks for one (`dashboard_listen`, or HIVE_DASHBOARD for a daemon
# subprocess): the default, 127.0.0.1:7777, is a fixed port shared by everyone on this machine.
os.environ["HIVE_DASHBOARD"] = "off"


@pytest.fixture
def dirs() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hive_config(dirs: Path) -> dict[str, Any]:
    """Overrides for the `hive` fixture's config (tests may update it before using `hive`)."""
    return {}


@pytest.fixture
async def hive(
    dirs: Path, hive_config: dict[str, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Hive]:
    # Under an autojumping clock the store and blocking work run inline (config `inline_io`);
    # every other test runs the store thread and its group commit, as production does.
    inline = "autojump_clock" in request.fixturenames
    cfg = make_config(dirs, **{"inline_io": inline, **hive_config})
    async with trio.open_nursery() as nursery:
        h: Hive = await nursery.start(serve, cfg)
        try:
            yield h
        finally:
            h.shutdown()


@pytest.fixture
def host(hive: Hive) -> str:
    return str(hive.paths.host_socket)


@pytest.fixture
def manager(hive: Hive) -> str:
    return str(hive.paths.manager_socket)


@pytest.fixture
def daemon(dirs: Path) -> Iterator[Daemon]:
    d = Daemon(dirs)
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
