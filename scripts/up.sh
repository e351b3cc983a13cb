#!/usr/bin/env bash
# up: same flags and exit codes as `invoke up`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation up "$@"
