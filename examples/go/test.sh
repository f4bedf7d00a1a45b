#!/bin/sh
# Runs the Go example's tests against the server at $MASKFORMER_ADDRESS (run ./install.sh first).
#
#   MASKFORMER_ADDRESS=127.0.0.1:5081 ./test.sh
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
cd "$HERE"
exec go test -v -count=1 .
