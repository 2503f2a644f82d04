"""Reading a configuration that must be refused: its problems, with the file's path as ``F``."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config
from routing_trees.source import SourceError


def problems_of(path: Path) -> list[str]:
    """Every ``FILE:LINE:COL: message`` of the configuration at ``path``, as ``F:LINE:COL: ...``."""
    with pytest.raises(SourceError) as info:
        load_config(path)
    return [str(p).replace(str(path), "F") for p in info.value.problems]
