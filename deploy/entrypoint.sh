#!/bin/sh
# Entry point of the memup images: `memup "$@"` (actor | scorer | learner | ...).
#
# A scorer registers tcp://<scorer.advertise_host>:<scorer.port> in Redis and learners
# connect to exactly that, so every scorer container must advertise its own address, not
# a shared service name: with `--scale scorer=N` each replica registers itself. Unless
# MEMUP_SCORER_ADVERTISE_HOST is already set (e.g. to a host's address when the port is
# published for learners on other machines), it is set here to this container's address
# on the compose network.
set -eu

if [ -z "${MEMUP_SCORER_ADVERTISE_HOST:-}" ]; then
    # The address the container's own hostname resolves to (Docker writes it into
    # /etc/hosts); `hostname -i` where that is missing.
    address=$(python -c 'import socket; print(socket.gethostbyname(socket.gethostname()))' \
              2> /dev/null || hostname -i 2> /dev/null | cut -d' ' -f1 || true)
    case "$address" in
        "" | 127.*) ;;  # not found, or loopback (no use to a learner elsewhere): keep the default
        *) export MEMUP_SCORER_ADVERTISE_HOST="$address" ;;
    esac
fi

exec memup "$@"
