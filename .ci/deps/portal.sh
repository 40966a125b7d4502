# Sourced by .ci/test. rescue-portal's tests: PostgreSQL (tests/postgres.rs starts its
# own server in a temporary folder, as user postgres, since the server refuses root) and
# headless Chromium with chromedriver (tests/browser.rs). Tests needing them fail, never
# skip, when they are missing.
if ! { ls /usr/lib/postgresql/*/bin/initdb && command -v psql && id postgres; } >/dev/null 2>&1; then
    apt-get update && apt-get install -y postgresql
fi
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
    apt-get update && apt-get install -y chromium chromium-driver
fi
