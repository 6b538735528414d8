"""T-Maze (memup-spec B.1): the env (:mod:`tasks.tmaze.env`), its networks and its task
(:mod:`tasks.tmaze.task`)."""
