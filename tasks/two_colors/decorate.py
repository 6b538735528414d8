"""The DECORATE lump: the scenario's logic as actors, with no ACS.

* A director actor placed in the map draws the colour with ``A_Jump(128, …)`` (the engine
  RNG, so ``DoomGame.set_seed`` makes it repeat), spawns the pillar and the items at random
  spots (``A_SpawnItemEx`` with ``SXF_ABSOLUTEPOSITION``: offsets from the director along
  the map axes), then keeps spawning.
* Items are ``CustomInventory``: their ``Pickup`` state runs on the player, so it can heal
  (``HealThing``), hurt (``A_DamageSelf``), teleport or end the level. Each colour branch
  spawns different classes with the same sprites, so the pickup's meaning follows the pillar.
* The env cannot read ACS globals without ACS, so pickups are counted in ammo the player has
  no use for (no attack button): see ``COUNTERS``.

Verified in ViZDoom 1.3.2 on this machine (see tests/integration/test_two_colors.py):

* a state block on one line (``States { Spawn: ARM2 A -1 Stop }``) segfaults the engine
  while loading actors, so every statement gets its own line;
* ``AMMOn`` reads the player's stock of the ammo type of slot n's first weapon, owned or
  not: Clip (2), Shell (3), RocketAmmo (5), Cell (6); the player starts with 50 Clip;
* the director's colour mark (``A_GiveInventory(…, AAPTR_PLAYER1)``) is there in the first
  state the env sees (tic 1); seeds 0..99 give 50 red and 50 green;
* ``HealThing(25)`` stops at 100 HP; ``A_DamageSelf(25)`` takes exactly 25 and can kill, and
  the count given before it still shows after the death;
* ``A_JumpIfInventory`` and ``Goto`` work inside a ``Pickup`` chain (the counter wrap);
* ``Teleport_NoFog(tid)`` in a token's ``Pickup`` moves the player to that TeleportDest;
  ``Exit_Normal(0)`` ends the episode (not as a death) 2 agent steps after the pickup;
* a pillar whose only state lasts 90 tics and then ``Stop`` is gone from tic 91;
* ViZDoom plays Freedoom 2, whose ARM2 ("blue armour") is red: the red pillar's items look
  red, the green pillar's (ARM1) green.
"""

from __future__ import annotations

from tasks.two_colors.layout import (
    BLOCK,
    CHOICE_ITEMS,
    DELAY_PILLAR_TICS,
    DIRECTOR_SPOT,
    INITIAL_ITEMS,
    ITEM_RADIUS,
    MEDIKIT_TICS,
    MEDIKITS,
    NUKAGE_ROOM,
    RESPAWN_TICS,
    Layout,
)
from tasks.two_colors.udmf import DIRECTOR_TYPE, ROOM2_TID, ROOM3_TID

COUNTERS = {"good": ("Shell", 3), "bad": ("RocketAmmo", 5), "colour": ("Cell", 6),
            "medikit": ("Clip", 2)}
"""Counter name → (ammo class, ViZDoom AMMO slot). The colour marker is 1 red, 2 green."""
COLOUR_MARK = {"red": 1, "green": 2}
COUNTER_WRAP = 32
COUNTER_WRAP_AT = 40
"""At this stock a counter drops by ``COUNTER_WRAP`` (<= every capped maximum, 50 shells)."""
HEAL = 25
LOOKS = {"green": "ARM1", "blue": "ARM2"}
GOOD_LOOK = {"green": "green", "red": "blue"}
"""The armour look that matches a pillar colour (the red pillar pairs with blue armour)."""
PILLAR_SPRITES = {"red": "COL3", "green": "COL1"}


def _actor(header: str, props: list[str], states: list[str]) -> list[str]:
    return [f"Actor {header}", "{", *(f"  {p}" for p in props), "  States", "  {",
            *(s if s.endswith(":") else f"    {s}" for s in states), "  }", "}", ""]


def _item(name: str, sprite: str, frames: str, counter: str, effect: str) -> list[str]:
    """A pickup that adds 1 to ``counter`` (modulo ``COUNTER_WRAP``), then does ``effect``.

    Counting comes first so that a fatal or level-ending pickup is still counted. Ammo
    stocks are capped (shells at 50), so a counter at ``COUNTER_WRAP_AT`` drops by
    ``COUNTER_WRAP``: episodes of any length count every pickup, read modulo the wrap.
    """
    ammo = COUNTERS[counter][0]
    spawn = ([f"{sprite} A 6", f"{sprite} B 7 Bright", "Loop"] if frames == "AB"
             else [f"{sprite} A -1", "Stop"])
    props = ["Radius 20", "Height 16", "+INVENTORY.ALWAYSPICKUP", 'Inventory.PickupMessage ""']
    return _actor(f"{name} : CustomInventory", props, [
        "Spawn:", *spawn,
        "Pickup:", f'TNT1 A 0 A_GiveInventory("{ammo}", 1)',
        f'TNT1 A 0 A_JumpIfInventory("{ammo}", {COUNTER_WRAP_AT}, "Wrap")',
        "Effect:", f"TNT1 A 0 {effect}", "Stop",
        "Wrap:", f'TNT1 A 0 A_TakeInventory("{ammo}", {COUNTER_WRAP})', "Goto Effect"])


def _item_actors(variant: str) -> list[str]:
    """The items (and, in ``delay``, the teleport tokens) the variant's director spawns."""
    if variant == "delay":
        effects = {"ChoiceGood": ("good", "Exit_Normal(0)"),
                   "ChoiceBad": ("bad", "Exit_Normal(0)")}
    else:
        effects = {"Good": ("good", f"HealThing({HEAL})"),
                   "Bad": ("bad", f"A_DamageSelf({HEAL})")}
    lines: list[str] = []
    for look, sprite in LOOKS.items():
        for kind, (counter, effect) in effects.items():
            lines += _item(f"TwoColors{kind}{look.capitalize()}", sprite, "AB", counter, effect)
    if variant != "delay":
        return lines
    lines += _item("TwoColorsMedikit", "MEDI", "A", "medikit", f"HealThing({HEAL})")
    for room, tid in ((2, ROOM2_TID), (3, ROOM3_TID)):
        lines += _actor(f"TwoColorsToRoom{room} : CustomInventory", [],
                        ["Spawn:", "TNT1 A -1", "Stop", "Pickup:",
                         f"TNT1 A 0 Teleport_NoFog({tid}, 0, 0)", "Stop"])
    return lines


def _pillar_actors(tics: int) -> list[str]:
    lines: list[str] = []
    for colour, sprite in PILLAR_SPRITES.items():
        lines += _actor(f"TwoColors{colour.capitalize()}Pillar",
                        ["Radius 16", "Height 52", "+SOLID"],
                        ["Spawn:", f"{sprite} A {tics}", "Stop"])
    return lines


class _Director:
    """Emits the director's state list; labels are numbered so unrolled blocks never clash."""

    def __init__(self) -> None:
        self.states: list[str] = []
        self._labels = 0

    def label(self, stem: str) -> str:
        self._labels += 1
        name = f"{stem}{self._labels}"
        self.states.append(f"{name}:")
        return name

    def do(self, action: str, tics: int = 0) -> None:
        self.states.append(f"TNT1 A {tics} {action}".rstrip())

    def wait(self, tics: int) -> None:
        if tics > 0:
            self.states.append(f"TNT1 A {tics}")

    def spawn_at(self, cls: str, x: int, y: int) -> None:
        dx, dy = x - DIRECTOR_SPOT[0], y - DIRECTOR_SPOT[1]
        self.do(f'A_SpawnItemEx("{cls}", {dx}, {dy}, 0, 0, 0, 0, 0, '
                "SXF_ABSOLUTEPOSITION|SXF_NOCHECKPOSITION)")

    def spawn_random(self, cls: str) -> None:
        """One ``cls`` at a uniform spot of the nukage room, redrawn while it would touch the
        block (walls are kept at item radius by the draw range itself)."""
        x0, y0, x1, y1 = NUKAGE_ROOM
        bx0, by0, _, by1 = BLOCK
        r, (cx, cy) = ITEM_RADIUS, DIRECTOR_SPOT
        again = self.label("Draw")
        self.do(f'A_SetUserVar("user_x", random({x0 + r - cx}, {x1 - r - cx}))')
        self.do(f'A_SetUserVar("user_y", random({y0 + r - cy}, {y1 - r - cy}))')
        self.do(f'A_JumpIf(user_x > {bx0 - r - cx} && user_y > {by0 - r - cy} && '
                f'user_y < {by1 + r - cy}, "{again}")')
        self.do(f'A_SpawnItemEx("{cls}", user_x, user_y, 20, 0, 0, 0, 0, SXF_ABSOLUTEPOSITION)')

    def spawn_many(self, cls: str, count: int) -> None:
        """``count`` random spawns as a counted loop (a loop keeps the text short)."""
        if count <= 0:
            return
        self.do(f'A_SetUserVar("user_n", {count})')
        again = self.label("Many")
        self.spawn_random(cls)
        self.do('A_SetUserVar("user_n", user_n - 1)')
        self.do(f'A_JumpIf(user_n > 0, "{again}")')


def _standard_branch(d: _Director, colour: str) -> None:
    good = GOOD_LOOK[colour]
    bad = "green" if good == "blue" else "blue"
    cls = {good: f"TwoColorsGood{good.capitalize()}", bad: f"TwoColorsBad{bad.capitalize()}"}
    d.spawn_many(cls["green"], INITIAL_ITEMS)
    d.spawn_many(cls["blue"], INITIAL_ITEMS)
    loop = d.label("Respawn")
    d.wait(RESPAWN_TICS)
    d.spawn_random(cls["green"])
    d.wait(RESPAWN_TICS)
    d.spawn_random(cls["blue"])
    d.states.append(f"Goto {loop}")


def _delay_branch(d: _Director, colour: str, delay_tics: int) -> None:
    good = GOOD_LOOK[colour]
    for look, (x, y) in CHOICE_ITEMS.items():
        kind = "Good" if look == good else "Bad"
        d.spawn_at(f"TwoColorsChoice{kind}{look.capitalize()}", x, y)
    d.wait(DELAY_PILLAR_TICS)
    d.do('A_GiveInventory("TwoColorsToRoom2", 1, AAPTR_PLAYER1)')
    steps, rest = divmod(delay_tics, MEDIKIT_TICS)
    if steps:
        d.spawn_many("TwoColorsMedikit", MEDIKITS)
    d.wait(rest)
    if steps:
        d.do(f'A_SetUserVar("user_m", {steps})')
        again = d.label("Medikit")
        d.wait(MEDIKIT_TICS)
        d.do('A_SetUserVar("user_m", user_m - 1)')
        done = f"Choice{colour.capitalize()}"
        d.do(f'A_JumpIf(user_m <= 0, "{done}")')
        d.spawn_random("TwoColorsMedikit")
        d.states.append(f"Goto {again}")
        d.states.append(f"{done}:")
    d.do('A_GiveInventory("TwoColorsToRoom3", 1, AAPTR_PLAYER1)')
    d.states += ["TNT1 A -1", "Stop"]


def _director(layout: Layout) -> list[str]:
    d = _Director()
    # The first state's action does not run when a map thing spawns: wait one tic first.
    d.states += ["Spawn:", "TNT1 A 1", 'TNT1 A 0 A_Jump(128, "Red")']
    for colour in ("green", "red"):
        d.states.append(f"{colour.capitalize()}:")
        d.do(f'A_GiveInventory("{COUNTERS["colour"][0]}", {COLOUR_MARK[colour]}, AAPTR_PLAYER1)')
        d.spawn_at(f"TwoColors{colour.capitalize()}Pillar", *layout.pillar)
        if layout.variant == "delay":
            _delay_branch(d, colour, layout.delay_tics)
        else:
            _standard_branch(d, colour)
    props = ["+NOBLOCKMAP", "+NOSECTOR", "+NOGRAVITY", "+DONTSPLASH", "var int user_x;",
             "var int user_y;", "var int user_n;", "var int user_m;"]
    return _actor(f"TwoColorsDirector {DIRECTOR_TYPE}", props, d.states)


def decorate(layout: Layout) -> str:
    """The DECORATE text of ``layout``: pillars, items, teleport tokens and the director."""
    lines = _pillar_actors(layout.pillar_tics) + _item_actors(layout.variant) + _director(layout)
    return "\n".join(lines)
