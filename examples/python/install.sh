#!/bin/sh
# Installs the Debian packages the Python examples need and generates the gRPC stubs.
# Idempotent: packages already installed are not fetched again, and the stubs are regenerated.
#
#   sudo ./install.sh            (or as root, e.g. in CI)
#
# Everything runs on Debian's /usr/bin/python3 with Debian's matched grpcio / protobuf / protoc /
# grpc_python_plugin, so the generated code always fits the runtime library.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT="$HERE/generated"
PACKAGES="python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc"

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

rm -rf "$OUT"
mkdir -p "$OUT"
/usr/bin/protoc -I "$REPO/protos" \
  --python_out="$OUT" \
  --grpc_out="$OUT" \
  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
  "$REPO/protos/maskformer/v1/segmentation.proto"

# Check that the stubs import with Debian's python3 (not a pyenv/venv python3 earlier on PATH).
/usr/bin/python3 -c "import sys; sys.path.insert(0, '$OUT'); \
from maskformer.v1 import segmentation_pb2, segmentation_pb2_grpc; \
import grpc, google.protobuf; \
print('stubs OK in $OUT (grpcio', grpc.__version__ + ', protobuf', google.protobuf.__version__ + ')')"
