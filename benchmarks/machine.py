"""What every benchmark reports beside its figures: the machine, and this process's peak memory."""

from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: cpus, memory_gib, python and platform."""
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(pages * page_size / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def peak_rss_mb() -> int:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
