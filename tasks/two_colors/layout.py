"""The Two-Colors variants as one parameter record: rooms, spots, timings, rewards.

Numbers follow memup-spec B.4 (decoded from the reference scenario). Variants are
parameters of one generator, never copies of a map:

* ``standard``: the nukage room, pillar 181 units straight ahead for 90 tics.
* ``hard``: the same room, pillar at (-128, -128) and the player facing 0°, so the pillar
  is off to the left of the first view.
* ``delay``: pillar room (shown 100 tics, never removed) → nukage room with medikits for
  ``delay_tics`` → a room with one item of each colour (matching +5, either ends the level).
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("standard", "hard", "delay")

Rect = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in map units, x0 < x1 and y0 < y1."""

NUKAGE_ROOM: Rect = (-768, -768, 512, 512)
BLOCK: Rect = (256, -520, 512, -504)
"""A solid 256 x 16 block against the nukage room's east wall (a notch in its outline)."""
PILLAR_ROOM: Rect = (-1568, -128, -960, 128)
CHOICE_ROOM: Rect = (736, -128, 992, 128)
CEILING = 128
ITEM_RADIUS = 20
"""Armour and medikit radius: random spots keep this far from walls so spawns never fail."""

DIRECTOR_SPOT = (-128, -128)
"""Where the (invisible) director actor stands; its spawn offsets are relative to it."""
ROOM2_SPOT = (-128, -128, 0)
ROOM3_SPOT = (800, 0, 0)
CHOICE_ITEMS = {"green": (928, 64), "blue": (928, -64)}

PILLAR_TICS = 90
DELAY_PILLAR_TICS = 100
INITIAL_ITEMS = 10
"""Armour items of each look at the start."""
RESPAWN_TICS = 30
"""A green armour, wait, a blue armour, wait, … forever."""
MEDIKITS = 20
MEDIKIT_TICS = 50
STANDARD_TIMEOUT_TICS = 2100
CHOICE_TICS = 200
"""Time left for the final choice in the delay variant (2300 = 100 + 2000 + 200)."""
LIVING_REWARD = 0.01
PICKUP_REWARD = 1.0
CHOICE_REWARD = 5.0
MEDIKIT_REWARD = 0.1


@dataclass(frozen=True)
class Layout:
    """Everything the map, the DECORATE and the env need to know about one variant."""

    variant: str
    delay_tics: int
    floor_damage: bool
    player: tuple[int, int, int]
    """Start (x, y, angle in degrees)."""
    pillar: tuple[int, int]
    pillar_tics: int
    """How long the pillar stands; -1 = for the whole episode."""
    timeout_tics: int
    living_reward: float
    good_reward: float
    bad_reward: float


def make_layout(variant: str = "standard", delay_tics: int = 2000,
                floor_damage: bool = True) -> Layout:
    """The layout of ``variant``; ``delay_tics`` only matters for ``delay``.

    Raises:
        ValueError: for an unknown variant or a negative delay.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown Two-Colors variant {variant!r}; expected one of {VARIANTS}")
    if delay_tics < 0:
        raise ValueError(f"delay_tics must be >= 0, got {delay_tics}")
    if variant == "delay":
        return Layout(variant, int(delay_tics), floor_damage, (-1440, 0, 0), (-1120, 0), -1,
                      DELAY_PILLAR_TICS + int(delay_tics) + CHOICE_TICS, 0.0,
                      CHOICE_REWARD, 0.0)
    pillar = (-128, -128) if variant == "hard" else (-256, -512)
    angle = 0 if variant == "hard" else 45
    # The standard and hard maps do not depend on the delay: pin it so the cache key ignores it.
    return Layout(variant, 0, floor_damage, (-384, -640, angle), pillar, PILLAR_TICS,
                  STANDARD_TIMEOUT_TICS, LIVING_REWARD, PICKUP_REWARD, -PICKUP_REWARD)
