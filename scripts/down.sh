#!/usr/bin/env bash
# down: same flags and exit codes as `invoke down`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation down "$@"
