#!/usr/bin/env bash
# rollback: same flags and exit codes as `invoke rollback`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation rollback "$@"
