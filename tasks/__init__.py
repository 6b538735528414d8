"""Tasks as plug-ins: one folder per task behind :class:`tasks.base.Task`, named in
:mod:`tasks.registry`. Roles ask the task; no role names one."""
