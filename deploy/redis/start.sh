#!/bin/sh
# The redis service of docker-compose.yml: renders the ACL users from deploy/redis/users.acl
# and the role passwords in the environment, then starts redis-server with redis.conf.
#
#   start.sh                     render, then exec redis-server (through the image's own
#                                docker-entrypoint.sh, which drops root for the redis user)
#   start.sh --render-only FILE  only write the rendered ACL file
#   start.sh --healthcheck       PING as the healthcheck user (the compose healthcheck)
#
# Outside the image (tests/deploy/test_compose.py): REDIS_CONF, ACL_TEMPLATE, ACL_RUN_DIR,
# REDIS_SERVER and REDIS_PORT (of --healthcheck) point it at other files, binaries, ports.
#
# The run: MEMUP_RUN_NAME (the same variable names the run of every role of the stack): the
# ACL users reach only memup:<run>:... keys. [A-Za-z0-9._-], starting with a letter or a
# digit, at most 128 characters (common/keys.py's rule), else Redis does not start.
#
# Passwords: ACTOR_REDIS_PASSWORD, SCORER_REDIS_PASSWORD, LEARNER_REDIS_PASSWORD, or files
# named by ACTOR_REDIS_PASSWORD_FILE, ... (Docker secrets). They go into the clients'
# REDIS_URL, so they must be URL-safe: letters, digits and . _ ~ - (e.g. `openssl rand -hex
# 24`). Only their SHA-256 reaches the ACL file; none is printed. The healthcheck user gets
# a random password at every start, kept in a root-only file inside the container.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TEMPLATE=${ACL_TEMPLATE:-$HERE/users.acl}
CONF=${REDIS_CONF:-$HERE/redis.conf}
RUN_DIR=${ACL_RUN_DIR:-/run/memup-redis}
REDIS_SERVER=${REDIS_SERVER:-redis-server}  # the binary the ACL file is for
HEALTH_PASS_FILE=$RUN_DIR/healthcheck.pass

die() {
    echo "redis start.sh: $*" >&2
    exit 1
}

# The password of role $1 (ACTOR, SCORER, LEARNER), from the variable or its _FILE.
password() {
    eval "value=\${$1_REDIS_PASSWORD:-}"
    eval "file=\${$1_REDIS_PASSWORD_FILE:-}"
    if [ -z "$value" ] && [ -n "$file" ]; then
        [ -r "$file" ] || die "$1_REDIS_PASSWORD_FILE=$file is not readable"
        value=$(cat "$file")
    fi
    [ -n "$value" ] || die "$1_REDIS_PASSWORD is not set: copy deploy/env.example to .env \
and set the passwords"
    case "$value" in
        *[!A-Za-z0-9._~-]*) die "$1_REDIS_PASSWORD may only hold letters, digits and . _ ~ - \
(it goes into a redis:// URL)" ;;
    esac
    [ "${#value}" -ge 12 ] || die "$1_REDIS_PASSWORD is shorter than 12 characters"
    case "$value" in
        change-me*) echo "redis start.sh: WARNING: $1_REDIS_PASSWORD is the example value \
from deploy/env.example; set your own in .env" >&2 ;;
    esac
    printf '%s' "$value"
}

# The run name of the ACL patterns: common/keys.py's identifiers only (no ':' or glob
# characters, so memup:<run>:* cannot reach another run's keys, nor break the sed below).
run_name() {
    run=${MEMUP_RUN_NAME:-}
    [ -n "$run" ] || die "MEMUP_RUN_NAME is not set: the ACL users are granted one run's keys \
(docker-compose.yml passes it; set it in .env)"
    case "$run" in
        [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) die "MEMUP_RUN_NAME='$run' must be letters, digits \
and . _ - only, starting with a letter or digit" ;;
    esac
    [ "${#run}" -le 128 ] || die "MEMUP_RUN_NAME is longer than 128 characters"
    printf '%s' "$run"
}

sha256() {
    printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# CLIENT SETINFO exists from Redis 7.2 on (redis-py sends it on connect and ignores a
# refusal); an older server refuses the whole ACL file over it, so drop it there.
setinfo_filter() {
    version=$("$REDIS_SERVER" --version 2> /dev/null \
              | sed -n 's/.* v=\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    major=${version%% *}
    minor=${version#* }
    if [ "${major:-0}" -gt 7 ] || { [ "${major:-0}" -eq 7 ] && [ "${minor:-0}" -ge 2 ]; }; then
        echo 's/^//'
    else
        echo 's/ +client|setinfo//g'
    fi
}

render() {  # render OUT HEALTHCHECK_PASSWORD
    actor=$(password ACTOR) || exit 1
    scorer=$(password SCORER) || exit 1
    learner=$(password LEARNER) || exit 1
    run=$(run_name) || exit 1
    umask 077
    sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' -e "$(setinfo_filter)" \
        -e "s/{{ACTOR_PASSWORD_SHA256}}/$(sha256 "$actor")/" \
        -e "s/{{SCORER_PASSWORD_SHA256}}/$(sha256 "$scorer")/" \
        -e "s/{{LEARNER_PASSWORD_SHA256}}/$(sha256 "$learner")/" \
        -e "s/{{HEALTHCHECK_PASSWORD_SHA256}}/$(sha256 "$2")/" \
        -e "s/{{RUN_NAME}}/$run/g" \
        "$TEMPLATE" > "$1"
    if grep -q '{{' "$1"; then
        die "$TEMPLATE has a placeholder this script does not fill"
    fi
}

random_password() {
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

case "${1:-}" in
    --render-only)
        [ -n "${2:-}" ] || die "usage: start.sh --render-only FILE"
        render "$2" "$(random_password)"
        exit 0
        ;;
    --healthcheck)
        # ACL WHOAMI, not PING: redis-cli goes on after a failed AUTH, and a PING could
        # then be answered by some other password-less server on that port.
        REDISCLI_AUTH=$(cat "$HEALTH_PASS_FILE") redis-cli --no-auth-warning \
            -p "${REDIS_PORT:-6379}" --user healthcheck acl whoami | grep -qx healthcheck
        exit $?
        ;;
esac

mkdir -p "$RUN_DIR"
chmod 755 "$RUN_DIR"
health=$(random_password)
(umask 077 && printf '%s' "$health" > "$HEALTH_PASS_FILE")
render "$RUN_DIR/users.acl" "$health"
if [ "$(id -u)" = 0 ] && id redis > /dev/null 2>&1; then
    chown redis "$RUN_DIR/users.acl"  # redis-server runs as the redis user and reads it
fi
if command -v docker-entrypoint.sh > /dev/null 2>&1; then
    # The official image's entry point: owns /data, then runs redis-server as user redis.
    exec docker-entrypoint.sh redis-server "$CONF" --aclfile "$RUN_DIR/users.acl" "$@"
fi
exec "$REDIS_SERVER" "$CONF" --aclfile "$RUN_DIR/users.acl" "$@"
