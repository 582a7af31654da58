"""The `hive-core` console script (`[project.scripts]`) and `python -m hive_core`.

Rules kept here:
- `hive-core hook` goes straight to `hive_core.agent.hook` before anything else is imported
  (click and every command module cost about 0.1 s, and a hook runs on every tool call of a
  Claude Code session); it ends the process as `python -m hive_core.agent.hook` does: exit 0,
  no interpreter teardown;
- everything else (`hive-core hook --help` too) is the click command line,
  `hive_core.surfaces.cli.main`.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["hook"] and not {"-h", "--help"} & set(args[1:]):
        from hive_core.agent import hook

        hook.main()
        os._exit(0)
    from hive_core.surfaces.cli.main import main as cli

    cli()
