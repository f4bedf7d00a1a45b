#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK and Node.js, from Debian's packages, when missing:
# ffmpeg (video in and out for the streaming CLI) and the Python example's gRPC runtime and stub
# generator (Debian's matched set: protoc + grpc_python_plugin + python3-grpcio/python3-protobuf).
# python3-pil is the oracle for the Pillow-exact resize test; python3-onnx makes the float16 model variant;
# python3-torch runs the HF export recipe (tools/model-zoo/export_hf.py) that a test checks.
# afl++ runs the fuzzing step (tools/fuzz.sh).
# Go 1.19, grpc-go, protobuf-go and their protoc plugins build and test the Go example (examples/go).
# prometheus is the real scraper the metrics test starts on loopback (its service is not used).
# openssl makes the throwaway CA and certificates of the clients' TLS tests (tools/make-test-certs.sh).
# kubectl renders the Kubernetes overlays (`kubectl kustomize`, tests/deploy): the machine image ships one;
# where none is on the PATH, Debian's kubernetes-client provides it (its kustomize 2.0 reads k8s/ too).
set -euo pipefail

packages=(ffmpeg python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc python3-pil python3-onnx python3-torch afl++ prometheus openssl
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
command -v kubectl >/dev/null || missing+=(kubernetes-client)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "test dependencies present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing: ${missing[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
