#!/usr/bin/env bash
# deploy-frontend: same flags and exit codes as `invoke deploy-frontend`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation deploy-frontend "$@"
