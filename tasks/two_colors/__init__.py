"""ViZDoom Two-Colors: a generated scenario (no third-party WAD, no ACS), its env
(:mod:`tasks.two_colors.env`, which imports ViZDoom) and its task (:mod:`tasks.two_colors.task`)."""
