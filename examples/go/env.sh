# Sourced by install.sh and test.sh, which set HERE to this folder: builds in GOPATH mode against
# Debian's Go packages (/usr/share/gocode) and the stubs install.sh generates into .gopath/, so no
# module is ever downloaded.
export GO111MODULE=off
export GOPATH="$HERE/.gopath:/usr/share/gocode"
export GOFLAGS=
export GOPROXY=off
