#!/usr/bin/env bash
# Fuzz smoke test of the HTTP front end's request head -> CGI variables path (request_env): every cargo-fuzz target of this
# directory for FUZZ_SECONDS (default 20) seconds from seeds/; see .ci/fuzz-smoke.sh.
exec bash "$(dirname "$0")/../../../.ci/fuzz-smoke.sh" "$(dirname "$0")" 20
