#!/usr/bin/env bash
# Migrate the database schema; same flags and exit codes as `invoke run-migrations`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation run-migrations "$@"
