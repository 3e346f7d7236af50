"""Reading the address a running `groovecast` command announces on its stdout."""

from __future__ import annotations

import re
import subprocess

VIEWER_URL = r"viewer: (http://127\.0\.0\.1:\d+/)"


def announced_url(proc: subprocess.Popen[str], pattern: str = VIEWER_URL, max_lines: int = 20) -> str | None:
    """The first match of ``pattern``'s group in the next ``max_lines`` lines of ``proc``'s stdout, or None."""
    assert proc.stdout is not None
    for _ in range(max_lines):
        m = re.search(pattern, proc.stdout.readline())
        if m:
            return m.group(1)
    return None
