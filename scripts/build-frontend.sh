#!/usr/bin/env bash
# Build, validate and record the Docusaurus site; same flags and exit codes as `invoke build-frontend`.
source "$(dirname "${BASH_SOURCE[0]}")/_door.sh"
run_operation build-frontend "$@"
