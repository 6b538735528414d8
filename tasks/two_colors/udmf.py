"""The map of a variant as a UDMF ``TEXTMAP`` (namespace "zdoom"), without node lumps.

ViZDoom 1.3.2 builds the nodes itself when a UDMF map has none (verified). Each room is a
separate sector closed by one-sided lines listed clockwise, so the front (right) side of
every line faces into the room. Rooms never touch: the delay variant moves the player
between them by teleporting, not by doors.
"""

from __future__ import annotations

from tasks.two_colors.layout import (
    BLOCK,
    CEILING,
    CHOICE_ROOM,
    DIRECTOR_SPOT,
    NUKAGE_ROOM,
    PILLAR_ROOM,
    ROOM2_SPOT,
    ROOM3_SPOT,
    Layout,
)

PLAYER_START = 1
TELEPORT_DEST = 14
DIRECTOR_TYPE = 20001
"""The DoomEdNum the DECORATE gives the director actor."""
ROOM2_TID = 2
ROOM3_TID = 3
FLOOR_DAMAGE = "damageamount = 8; damageinterval = 16;"
"""8 HP every 16 tics = 1 HP per agent step at frame skip 2 (memup-spec B.4).

Set with UDMF sector fields, not ``special = 83``: in ViZDoom 1.3.2 that special
(Damage_LavaHefty) hurts 8 HP every **32** tics (measured: 100, 92 at tic 1, 84 at 33, 76
at 65, …), half the rate the spec and TWO_COLORS.md give it. With these fields the engine
hurts at tics 0, 16, 32, … (measured), so the first frame already shows the red pain tint.
"""
LIGHT = 192

Point = tuple[int, int]


def _nukage_outline() -> list[Point]:
    """The nukage room clockwise, with the solid block cut into its east wall."""
    x0, y0, x1, y1 = NUKAGE_ROOM
    bx0, by0, _, by1 = BLOCK
    return [(x0, y1), (x1, y1), (x1, by1), (bx0, by1), (bx0, by0), (x1, by0), (x1, y0), (x0, y0)]


def _rect_outline(rect: tuple[int, int, int, int]) -> list[Point]:
    x0, y0, x1, y1 = rect
    return [(x0, y1), (x1, y1), (x1, y0), (x0, y0)]


class _TextMap:
    """Accumulates UDMF blocks; the element order fixes each element's index."""

    def __init__(self) -> None:
        self.vertices: list[str] = []
        self.lines: list[str] = []
        self.sides: list[str] = []
        self.sectors: list[str] = []
        self.things: list[str] = []

    def room(self, outline: list[Point], wall: str, floor: str, ceiling: str,
             damage: bool) -> None:
        """A closed sector from a clockwise outline."""
        sector = len(self.sectors)
        first = len(self.vertices)
        for x, y in outline:
            self.vertices.append(f"vertex {{ x = {x:.1f}; y = {y:.1f}; }}")
        for i in range(len(outline)):
            v1, v2 = first + i, first + (i + 1) % len(outline)
            self.lines.append(f"linedef {{ v1 = {v1}; v2 = {v2}; sidefront = {len(self.sides)}; "
                              "blocking = true; }")
            self.sides.append(f'sidedef {{ sector = {sector}; texturemiddle = "{wall}"; }}')
        fields = [f"heightfloor = 0; heightceiling = {CEILING};",
                  f'texturefloor = "{floor}"; textureceiling = "{ceiling}";',
                  f"lightlevel = {LIGHT};"]
        if damage:
            fields.append(FLOOR_DAMAGE)
        self.sectors.append("sector { " + " ".join(fields) + " }")

    def thing(self, type_: int, x: int, y: int, angle: int = 0, tid: int = 0) -> None:
        tid_field = f"id = {tid}; " if tid else ""
        # zdoom-namespace things default to no skill and no game mode: enable them all.
        self.things.append(f"thing {{ {tid_field}x = {x:.1f}; y = {y:.1f}; angle = {angle}; "
                           f"type = {type_}; skill1 = true; skill2 = true; skill3 = true; "
                           "skill4 = true; skill5 = true; single = true; coop = true; "
                           "dm = true; }")

    def text(self) -> str:
        body = self.vertices + self.lines + self.sides + self.sectors + self.things
        return 'namespace = "zdoom";\n' + "\n".join(body) + "\n"


def textmap(layout: Layout) -> str:
    """The TEXTMAP of ``layout``: rooms, player start, director, teleport destinations."""
    m = _TextMap()
    # The texture stays NUKAGE1 without damage, so observations look the same.
    m.room(_nukage_outline(), "STONE2", "NUKAGE1", "CEIL5_1", layout.floor_damage)
    if layout.variant == "delay":
        m.room(_rect_outline(PILLAR_ROOM), "CEMENT1", "FLOOR0_1", "CEIL5_1", False)
        m.room(_rect_outline(CHOICE_ROOM), "BRONZE1", "FLAT5_4", "CEIL5_1", False)
        m.thing(TELEPORT_DEST, *ROOM2_SPOT[:2], angle=ROOM2_SPOT[2], tid=ROOM2_TID)
        m.thing(TELEPORT_DEST, *ROOM3_SPOT[:2], angle=ROOM3_SPOT[2], tid=ROOM3_TID)
    x, y, angle = layout.player
    m.thing(PLAYER_START, x, y, angle)
    m.thing(DIRECTOR_TYPE, *DIRECTOR_SPOT)
    return m.text()
