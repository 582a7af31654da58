"""Service tests: the services built by `app.build` from a config, talked to directly (no
socket, no transport), on the real store in inline mode (chosen here, through the config) and
the process backend; agent sockets are recorded, not served."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from hive_core.app import Hive, build, make_backend
from hive_core.clock import set_inline_io
from hive_core.daemon import _prepare_dirs
from hive_core.paths import Paths
from hive_core.store.db import Store
from tests.helpers import make_config


class RecordedEndpoints:
    """The services' `Endpoints`, recording which agent sockets would be served."""

    def __init__(self) -> None:
        self.open_names: set[str] = set()

    async def open(self, name: str) -> None:
        self.open_names.add(name)

    def close(self, name: str) -> None:
        self.open_names.discard(name)


@pytest.fixture
async def services(dirs: Path, autojump_clock: trio.testing.MockClock) -> AsyncIterator[Hive]:
    config = make_config(dirs, inline_io=True)
    paths = Paths(config.state_dir, config.run_dir)
    _prepare_dirs(paths)
    set_inline_io(True)
    store = Store(paths.database, inline=True)
    await store.open()
    backend = make_backend(config)
    try:
        async with trio.open_nursery() as nursery:
            hive = build(config, paths, store, backend, RecordedEndpoints(), nursery)
            backend.attach(nursery, hive.lifecycle.on_exit(nursery))
            try:
                yield hive
            finally:
                hive.lifecycle.close()
                await backend.close()  # while its watchers still run, as serve() does
                nursery.cancel_scope.cancel()
    finally:
        await store.close()
