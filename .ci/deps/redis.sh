# Sourced by .ci/test: the Redis tests (tests/directory_redis.rs, tests/gateway_cluster.rs)
# start their own redis-server (a child process on a free loopback port, no persistence)
# and fail when it is missing; install it from Debian's packages if needed.
if ! command -v redis-server >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server
fi
