#!/usr/bin/env bash
# deploy-backend: same flags and exit codes as `invoke deploy-backend`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation deploy-backend "$@"
