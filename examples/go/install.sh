#!/bin/sh
# Installs the Debian packages the Go example needs, generates the gRPC stubs and builds the client.
# Idempotent: packages already installed are not fetched again; stubs and binary are made anew.
#
#   sudo ./install.sh            (or as root, e.g. in CI)
#
# Everything comes from Debian 12: Go 1.19, grpc-go 1.33, protobuf-go 1.28 and their matched protoc
# plugins (protoc-gen-go, protoc-gen-go-grpc), built in GOPATH mode against /usr/share/gocode, so no
# module is downloaded. The stubs go to .gopath/ (git-ignored) at the proto's go_package path.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PACKAGES="golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc protobuf-compiler"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # Update the package lists only when a package cannot be found in the current ones.
  if ! $SUDO apt-get install -y --no-install-recommends $missing; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends $missing
  fi
else
  echo "Debian packages already installed: $PACKAGES"
fi

rm -rf "$HERE/.gopath" "$HERE/bin"
mkdir -p "$HERE/.gopath/src" "$HERE/bin"
/usr/bin/protoc -I "$REPO/protos" \
  --plugin=protoc-gen-go=/usr/bin/protoc-gen-go --go_out="$HERE/.gopath/src" \
  --plugin=protoc-gen-go-grpc=/usr/bin/protoc-gen-go-grpc --go-grpc_out="$HERE/.gopath/src" \
  "$REPO/protos/maskformer/v1/segmentation.proto"

. "$HERE/env.sh"
cd "$HERE"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted: $unformatted" >&2
  exit 1
fi
go vet .
go build -o bin/maskformer-go .
echo "built $HERE/bin/maskformer-go ($(go version | cut -d' ' -f3), stubs in $HERE/.gopath)"
