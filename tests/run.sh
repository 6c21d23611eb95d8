#!/usr/bin/env bash
# The test command: install what the tests need and is missing (nothing, on a
# machine that has it all), then run every test. Arguments go to `cargo test`,
# e.g. `bash tests/run.sh --test alerts`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/support/install-test-deps.sh
exec cargo test --locked "$@" </dev/null
