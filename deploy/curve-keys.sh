#!/bin/sh
# The one-shot `keys` service of docker-compose.yml: ZeroMQ CURVE keys for the segment feed,
# made on the first start and kept on every later one.
#
#   curve-keys.sh SCORER_DIR LEARNER_DIR
#
# `memup keys` makes the whole set in a private temp dir; each side's volume gets only what
# it needs (common/curve.py's layout under zmq.curve_keys): SCORER_DIR server.key_secret
# and clients/learner.key, LEARNER_DIR learner.key_secret and server.key. When one of those
# is missing (a first start, a removed volume, a copy cut short) both sides get new keys,
# so the two halves always match.
set -eu

[ "$#" -eq 2 ] || { echo "usage: curve-keys.sh SCORER_DIR LEARNER_DIR" >&2; exit 2; }
scorer=$1
learner=$2

if [ -s "$scorer/server.key_secret" ] && [ -s "$scorer/clients/learner.key" ] \
        && [ -s "$learner/learner.key_secret" ] && [ -s "$learner/server.key" ]; then
    echo "curve-keys: the CURVE keys are there; kept"
    exit 0
fi

umask 077  # secret keys: readable by the memup user only
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
memup keys "$work/keys" > /dev/null
mkdir -p "$scorer/clients"
cp "$work/keys/server.key_secret" "$scorer/server.key_secret"
cp "$work/keys/clients/learner.key" "$scorer/clients/learner.key"
cp "$work/keys/learner.key_secret" "$work/keys/server.key" "$learner/"
echo "curve-keys: made new CURVE keys (scorers: $scorer, learner: $learner)"
