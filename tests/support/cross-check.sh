#!/usr/bin/env bash
# Type-check the crate for macOS and Windows from this Debian 12 x86_64
# machine: `cargo check --all-targets` for x86_64-pc-windows-gnu,
# x86_64-apple-darwin and aarch64-apple-darwin. Run by .ci/run after clippy.
#
# No `rustup target add` here (no access to static.rust-lang.org), so it
# uses Debian's rustc-web/cargo-web 1.96 with its matching std source
# (rust-web-src) and builds std for each target with -Zbuild-std; clang-14
# compiles ring's C for darwin, mingw-w64 for Windows. Recipe and limits:
# ../shared/cross/README.md in the project's research notes (adapted from
# its ci-cross.sh; check only, no Wine).
#
# Time: apt ~45 s when the packages are missing (~1.4 GB); a cold target dir
# builds std and every dependency three times, ~9 min of CPU (5-6 min on 2
# idle cores); warm, only the crate is checked again, 10-30 s per target.
# Output in target/cross (~1.7 GB), apart from the rustup build's target/.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CROSS_TARGET_DIR:=$PWD/target/cross}"
TARGETS=(x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin)
PACKAGES=(rustc-web cargo-web rust-web-src clang-14 llvm-14 gcc-mingw-w64-x86-64)

start=$SECONDS
last=$SECONDS
step() { printf '=== [%ss] %s\n' "$((SECONDS - start))" "$*"; last=$SECONDS; }
took() { printf '    %s: %ss\n' "$1" "$((SECONDS - last))"; }

step "apt packages"
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "cross-check: need root to apt-get install ${PACKAGES[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  # rustc-web and rust-web-src in one command: their versions must match.
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" </dev/null >/dev/null
fi
took "apt"

# Debian's toolchain, not rustup's proxies (they may come first on PATH):
# the std source must match rustc exactly.
CARGO=/usr/bin/cargo
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1 # -Zbuild-std on a stable rustc
export CARGO_TARGET_DIR="$CROSS_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
test -f "$($RUSTC --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" || {
  echo "cross-check: no std source for $($RUSTC -V); install rust-web-src" >&2
  exit 1
}
rustc_v=$(dpkg-query -W -f='${Version}' rustc-web)
src_v=$(dpkg-query -W -f='${Version}' rust-web-src)
[ "$rustc_v" = "$src_v" ] || {
  echo "cross-check: rustc-web $rustc_v but rust-web-src $src_v; apt-get install both in one command" >&2
  exit 1
}
$RUSTC -V
$CARGO -V

# ring's build script compiles C for the target even under `cargo check`.
# There is no Apple SDK here: clang freestanding, ring's no-libc mode, and a
# stand-in for the one SDK header ring includes. Nothing is linked.
darwin_include="$CROSS_TARGET_DIR/tools/darwin-include"
mkdir -p "$darwin_include"
cat >"$darwin_include/TargetConditionals.h" <<'H'
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
H
darwin_cflags="-ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -isystem $darwin_include"

failed=()
for t in "${TARGETS[@]}"; do
  step "cargo check --all-targets --target $t"
  tu=${t//-/_}
  env=()
  case $t in
    *-apple-darwin) env=("CC_$tu=clang-14" "AR_$tu=llvm-ar-14" "CFLAGS_$tu=$darwin_cflags") ;;
  esac
  # std,test for every target: the same std set as a later `cargo test`
  # under Wine, so the std build is shared.
  if env "${env[@]}" $CARGO check --locked -Zbuild-std=std,test --target "$t" --all-targets; then
    took "$t ok"
  else
    took "$t FAILED"
    failed+=("$t")
  fi
done

step "done"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "cross-check: failed for ${failed[*]}" >&2
  exit 1
fi
