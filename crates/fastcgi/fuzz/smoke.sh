#!/usr/bin/env bash
# Fuzz smoke test of the FastCGI record codec and connection core (record, nv, conn): every cargo-fuzz target of this
# directory for FUZZ_SECONDS (default 20) seconds from seeds/; see .ci/fuzz-smoke.sh.
exec bash "$(dirname "$0")/../../../.ci/fuzz-smoke.sh" "$(dirname "$0")" 20
