#!/usr/bin/env python3
"""The long crash run: kill -9 the daemon `--kills` times under concurrent send/recv/ack load and
classify every message (quality.md "Crashes and durability": 2,000 kills in a longer run).

    .venv/bin/python bench/chaos.py [--kills 2000] [--seed N] [--agents 4] [--max-ops 40] [--keep]

The harness is `tests/chaos/harness.py` (its top comment says what a run does and what each
count means); CI runs the same with 200 kills (`tests/chaos/test_chaos.py`). Prints progress
every 100 kills, then the summary: kills, messages, deliveries, the classification counts and
the elapsed time. Exit status 0 when every count is zero, 1 otherwise. `--keep` keeps the temp
dir (database, daemon log) for a look afterwards.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos.harness import run_chaos  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=2000)
    p.add_argument("--seed", type=int, default=None, help="replay a run's random choices")
    p.add_argument("--agents", type=int, default=4)
    p.add_argument(
        "--max-ops", type=int, default=40, help="kill after 1 to this many answered requests"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    base = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))  # short: socket paths <= 107 bytes
    print(f"chaos: {args.kills} kills, seed {seed}, dir {base}", flush=True)
    try:
        summary = run_chaos(
            base,
            kills=args.kills,
            seed=seed,
            agents=args.agents,
            max_ops=args.max_ops,
            log=lambda s: print(s, flush=True),
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(summary.render())
    return 0 if summary.clean else 1


if __name__ == "__main__":
    sys.exit(main())
