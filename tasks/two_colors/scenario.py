"""Builds the Two-Colors WAD for a variant, and caches it by the hash of its text.

The WAD holds ``DECORATE`` then ``MAP01``, ``TEXTMAP``, ``ENDMAP`` (a UDMF map; the engine
builds the nodes). ``scenario_path`` writes it once per distinct generated text under
``$MEMUP_CACHE_DIR`` (default ``~/.cache/memup/``): a changed generator changes the hash and
so the file name, and stale files are simply never read again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tasks.two_colors.decorate import decorate
from tasks.two_colors.layout import Layout, make_layout
from tasks.two_colors.udmf import textmap
from tasks.two_colors.wad import pwad_bytes, write_atomic

MAP_NAME = "MAP01"


def scenario_lumps(layout: Layout) -> list[tuple[str, bytes]]:
    """The WAD's lumps, in order, for ``layout``."""
    return [("DECORATE", decorate(layout).encode("ascii")),
            (MAP_NAME, b""),
            ("TEXTMAP", textmap(layout).encode("ascii")),
            ("ENDMAP", b"")]


def scenario_bytes(variant: str = "standard", delay_tics: int = 2000,
                   floor_damage: bool = True) -> bytes:
    """The WAD of a variant, as bytes (deterministic: same arguments, same bytes)."""
    return pwad_bytes(scenario_lumps(make_layout(variant, delay_tics, floor_damage)))


def build_scenario(path: str | Path, variant: str = "standard", delay_tics: int = 2000,
                   floor_damage: bool = True) -> Path:
    """Writes the WAD of a variant to ``path`` (atomically) and returns the path."""
    path = Path(path)
    write_atomic(path, scenario_bytes(variant, delay_tics, floor_damage))
    return path


def cache_dir() -> Path:
    """``$MEMUP_CACHE_DIR`` or ``~/.cache/memup``."""
    return Path(os.environ.get("MEMUP_CACHE_DIR") or Path.home() / ".cache" / "memup")


def scenario_path(variant: str = "standard", delay_tics: int = 2000,
                  floor_damage: bool = True) -> Path:
    """The cached WAD of a variant, built on first use."""
    blob = scenario_bytes(variant, delay_tics, floor_damage)
    layout = make_layout(variant, delay_tics, floor_damage)
    digest = hashlib.sha256(blob).hexdigest()[:16]
    tag = f"{layout.variant}-d{layout.delay_tics}-{'dmg' if floor_damage else 'safe'}"
    path = cache_dir() / f"two_colors-{tag}-{digest}.wad"
    if not path.is_file():
        write_atomic(path, blob)
    return path
