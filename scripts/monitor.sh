#!/usr/bin/env bash
# Poll the configured health URLs; same flags and exit codes as `invoke monitor`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation monitor "$@"
