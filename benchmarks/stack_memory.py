"""Peak resident memory of each service of a running native stack, what its limits are sized on.

`python -m benchmarks.stack_memory HOME [--every 2] [--seconds N]`: while `mlops stack up`
runs on MLOPS_HOME=HOME (or until it appears), reads the stack's state file every `--every`
seconds and sums the resident memory of each service's process group from /proc (a flow
run the worker starts is in the worker's group); prints the peaks in MB as JSON lines, the
last when it ends (after `--seconds`, or Ctrl-C). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def group_rss_bytes() -> dict[int, int]:
    """Resident bytes of every process group on this machine, by group id."""
    page = os.sysconf("SC_PAGE_SIZE")
    groups: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        group, pages = int(fields[2]), int(fields[21])
        groups[group] = groups.get(group, 0) + pages * page
    return groups


def service_rss_mb(state_file: Path) -> dict[str, int]:
    """MB resident in each service's process group, from the stack's state file."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}
    groups = group_rss_bytes()
    return {
        name: groups[entry["pid"]] >> 20 for name, entry in state.items() if entry["pid"] in groups
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", type=Path)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    state_file = args.home / "stack" / "state.json"
    peaks: dict[str, int] = {}
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            for name, mb in service_rss_mb(state_file).items():
                peaks[name] = max(peaks.get(name, 0), mb)
            time.sleep(args.every)
    except KeyboardInterrupt:
        pass
    print(json.dumps(peaks))


if __name__ == "__main__":
    main()
