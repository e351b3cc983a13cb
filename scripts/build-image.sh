#!/usr/bin/env bash
# Build, push and record the backend's container image; same flags and exit codes as `invoke build-image`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation build-image "$@"
