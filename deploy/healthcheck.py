"""Container health check of the memup images: this role's Prometheus /metrics answers.

The port is the role's own ``MEMUP_<ROLE>_METRICS_PORT`` (docker-compose.yml sets a fixed
one per role; ``0``, a random port, cannot be checked from outside the process). Exits 0
when ``/metrics`` answers with that role's ``memup_build_info``, 1 otherwise (with the
reason).
"""

import os
import sys
import urllib.request

ROLES = ("actor", "scorer", "learner")


def main() -> int:
    found = [(role, os.environ.get(f"MEMUP_{role.upper()}_METRICS_PORT", "")) for role in ROLES]
    ports = [(role, port) for role, port in found if port not in ("", "0")]
    if not ports:
        print("healthcheck: set MEMUP_<ROLE>_METRICS_PORT to the role's fixed metrics port",
              file=sys.stderr)
        return 1
    for role, port in ports:
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=4) as reply:
                body = reply.read().decode("utf-8", "replace")
        except OSError as exc:
            print(f"healthcheck: {url}: {exc}", file=sys.stderr)
            return 1
        if not any(line.startswith("memup_build_info{") and f'role="{role}"' in line
                   for line in body.splitlines()):
            print(f"healthcheck: {url} answers without memup_build_info of the {role}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
