"""The stack's memory sampler reads a service's whole process group from its state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.stack_memory import service_rss_mb


def test_a_service_is_its_process_group_resident_memory(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    # The state file records a group's leader; this process's group stands for a service.
    state.write_text(json.dumps({"api": {"pid": os.getpgid(0)}, "gone": {"pid": 2**22 + 7}}))
    own_mb = (
        int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    ) >> 20
    measured = service_rss_mb(state)
    assert set(measured) == {"api"}  # a group that is gone is left out
    assert measured["api"] >= own_mb > 0  # the group holds at least this process
    assert service_rss_mb(tmp_path / "missing.json") == {}
