"""The fault suite: inject faults into a real ``memup up`` cluster and measure what they cost.

- :mod:`cli.faults.inject`: the injector (find a role's process, kill / freeze it, kill the
  embedded Redis, wipe its data, forge a request, flood the episodes stream).
- :mod:`cli.faults.cluster`: one ``memup up`` run with the ledger on, a sampler of Redis
  memory and every role's RSS, and the waits a scenario needs.
- :mod:`cli.faults.recovery`: time to recover and the loss bounds, from the ledger.
- :mod:`cli.faults.scenarios`: F1 to F8, each a run with its fault and its stated bounds.

``memup bench faults`` (:mod:`cli.bench_faults`) and ``tests/faults/`` run the scenarios.
"""
