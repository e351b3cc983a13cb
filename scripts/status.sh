#!/usr/bin/env bash
# Show recent jobs or one job's events; same flags and exit codes as `invoke status`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation status "$@"
