#!/bin/sh
# Installs, with apt-get, the Debian packages the build and tests need and
# this machine lacks: clang (the second compiler the tests build with),
# libomp-dev (OpenMP for clang) and libstb-dev (PNG for the heatmap tool).
# `install_deps.sh bench`: what the benchmark needs instead (libopenblas-dev).
set -eu
pkgs="gcc g++ make clang libomp-dev libstb-dev"
[ "${1:-}" = bench ] && pkgs="gcc make libopenblas-dev"
need=
for pkg in $pkgs; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
echo "installing:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
