#!/usr/bin/env bash
# Fuzz smoke test of the SCGI parser (parse_head, decode_stream): every cargo-fuzz target of this
# directory for FUZZ_SECONDS (default 15) seconds from seeds/; see .ci/fuzz-smoke.sh.
exec bash "$(dirname "$0")/../../../.ci/fuzz-smoke.sh" "$(dirname "$0")" 15
