"""The PWAD writer, the Two-Colors text generators and the frame resize (no engine needed)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from tasks.two_colors.decorate import decorate
from tasks.two_colors.layout import VARIANTS, make_layout
from tasks.two_colors.scenario import scenario_bytes, scenario_lumps, scenario_path
from tasks.two_colors.screen import AreaResize, area_weights
from tasks.two_colors.udmf import textmap
from tasks.two_colors.wad import pwad_bytes, read_pwad

LAYOUTS = [make_layout(v) for v in VARIANTS] + [make_layout("standard", floor_damage=False),
                                                make_layout("delay", delay_tics=130)]


def test_pwad_bytes_parse_back_by_hand() -> None:
    lumps = [("DECORATE", b"actor text"), ("MAP01", b""), ("TEXTMAP", b"x" * 7), ("ENDMAP", b"")]
    blob = pwad_bytes(lumps)
    magic, count, offset = struct.unpack_from("<4sii", blob, 0)
    assert (magic, count) == (b"PWAD", 4)
    assert offset + 16 * count == len(blob)
    parsed = []
    for i in range(count):
        start, size, name = struct.unpack_from("<ii8s", blob, offset + 16 * i)
        parsed.append((name.rstrip(b"\0").decode(), blob[start:start + size]))
    assert parsed == lumps
    assert read_pwad(blob) == lumps


@pytest.mark.parametrize("name", ["", "TOOLONGNAME", "lower"])
def test_bad_lump_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError):
        pwad_bytes([(name, b"x")])


def test_truncated_wad_is_rejected() -> None:
    blob = pwad_bytes([("TEXTMAP", b"abc")])
    with pytest.raises(ValueError):
        read_pwad(blob[:-4])


def test_scenario_wad_has_the_map_lumps_in_order() -> None:
    names = [name for name, _ in read_pwad(scenario_bytes("standard"))]
    assert names == ["DECORATE", "MAP01", "TEXTMAP", "ENDMAP"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_generated_text_is_deterministic_per_variant(variant: str) -> None:
    assert scenario_bytes(variant) == scenario_bytes(variant)
    others = {scenario_bytes(v) for v in VARIANTS if v != variant}
    assert scenario_bytes(variant) not in others


def test_parameters_change_the_text() -> None:
    assert scenario_bytes("standard", floor_damage=False) != scenario_bytes("standard")
    assert scenario_bytes("delay", delay_tics=1000) != scenario_bytes("delay")
    # The delay only exists in the delay variant.
    assert scenario_bytes("standard", delay_tics=1000) == scenario_bytes("standard")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.variant}-{lay.floor_damage}")
def test_decorate_has_one_statement_per_line(layout) -> None:
    """ViZDoom 1.3.2 segfaults on ``States { Spawn: ARM2 A -1 Stop }`` on one line."""
    text = decorate(layout)
    state_line = re.compile(r"^(\w+:|Stop|Loop|Goto \w+|"
                            r"[A-Z0-9]{4} [A-Z]+ -?\d+( Bright)?( [A-Za-z_]+\(.*\))?)$")
    in_states = False
    for line in text.splitlines():
        stripped = line.strip()
        assert not ("{" in stripped and "}" in stripped), line
        assert stripped.count(";") <= 1, line
        if stripped == "States":
            in_states = True
        elif in_states and stripped == "}":
            in_states = False
        elif in_states and stripped != "{":
            assert state_line.match(stripped), f"not one state statement: {line!r}"


def test_damage_only_with_floor_damage() -> None:
    assert "damageamount = 8; damageinterval = 16;" in textmap(make_layout("standard"))
    safe = textmap(make_layout("standard", floor_damage=False))
    assert "damage" not in safe and '"NUKAGE1"' in safe


def test_every_variant_places_player_and_director() -> None:
    for layout in LAYOUTS:
        text = textmap(layout)
        assert text.startswith('namespace = "zdoom";')
        assert text.count("type = 1;") == 1 and text.count("type = 20001;") == 1
    assert "TwoColorsToRoom3" in decorate(make_layout("delay"))
    assert "TwoColorsToRoom3" not in decorate(make_layout("hard"))


def test_scenario_path_caches_by_text_hash(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEMUP_CACHE_DIR", str(tmp_path))
    first = scenario_path("hard")
    mtime = first.stat().st_mtime_ns
    assert scenario_path("hard") == first and first.stat().st_mtime_ns == mtime
    assert first.read_bytes() == scenario_bytes("hard")
    assert scenario_path("standard") != first
    # A changed generator (here: different lumps) must land in another file.
    monkeypatch.setattr("tasks.two_colors.scenario.scenario_lumps",
                        lambda layout: [*scenario_lumps(layout), ("EXTRA", b"1")])
    assert scenario_path("hard") != first
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_area_resize_is_the_exact_area_mean() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (3, 180, 320), dtype=np.uint8)
    exact = area_weights(180, 64) @ frame.astype(np.float64) @ area_weights(320, 112).T
    out = AreaResize((180, 320), (64, 112))(frame)
    assert out.shape == (3, 64, 112) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out - exact).max() <= 0.5 + 1e-3  # rounding only
    flat = np.full((3, 180, 320), 77, dtype=np.uint8)
    assert (AreaResize((180, 320), (64, 112))(flat) == 77).all()
    with pytest.raises(ValueError):
        AreaResize((180, 320), (64, 112))(frame[:, :90])
