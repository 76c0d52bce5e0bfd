"""The notebook's context as the emulator wrote it (read anew at every call)."""

from __future__ import annotations

import json
from pathlib import Path


def load() -> dict:
    """The context file's content: ``context``, ``secrets``, ``temp``."""
    where = Path(__file__).with_name("context_file.txt").read_text().strip()
    return json.loads(Path(where).read_text())
