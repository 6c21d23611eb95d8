#!/usr/bin/env bash
# The crate on macOS and Windows, from this Debian 12 x86_64 machine:
#   clippy --all-targets -D warnings for x86_64-pc-windows-gnu,
#     x86_64-apple-darwin and aarch64-apple-darwin;
#   cargo build and cargo test for x86_64-pc-windows-gnu, the tests run under
#     Wine 8 (tests/windows_gateway.rs among them).
# Run by .ci/run after the Linux clippy. macOS is compile-checked only:
# nothing here links or runs a Mach-O binary.
#
# No `rustup target add` here (no access to static.rust-lang.org), so it
# uses Debian's rustc-web/cargo-web 1.96 with its matching std source
# (rust-web-src) and clippy (rust-web-clippy), and builds std for each
# target with -Zbuild-std; clang-14 compiles ring's C for darwin, mingw-w64
# for Windows. Recipe and Wine's limits: ../shared/cross/README.md in the
# project's research notes (adapted from its ci-cross.sh).
#
# Time: each step prints its seconds. apt ~1 min when the packages are
# missing (~1.6 GB with Wine); a cold target dir builds std and every
# dependency for three targets, plus a second (codegen) build for Windows;
# the Wine prefix ~20 s the first time. Measured figures: .ci/run.
# Output in target/cross, apart from the rustup build's target/: ~0.5 GB
# per macOS target; the Windows build and its debug test binaries, 5-7 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${CROSS_TARGET_DIR:=$PWD/target/cross}"
TARGETS=(x86_64-pc-windows-gnu x86_64-apple-darwin aarch64-apple-darwin)
PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy clang-14 llvm-14
  gcc-mingw-w64-x86-64 wine wine64)
WIN=x86_64-pc-windows-gnu

start=$SECONDS
last=$SECONDS
step() { printf '=== [%ss] %s\n' "$((SECONDS - start))" "$*"; last=$SECONDS; }
took() { printf '    %s: %ss\n' "$1" "$((SECONDS - last))"; }

step "apt packages"
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "cross-check: need root to apt-get install ${PACKAGES[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  # rustc-web, rust-web-src and rust-web-clippy in one command: their
  # versions must match.
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" </dev/null >/dev/null
fi
took "apt"

# Debian's toolchain, not rustup's proxies (they may come first on PATH):
# the std source must match rustc exactly. Clippy is Debian's cargo-clippy
# called directly: `cargo clippy` would find rustup's in ~/.cargo/bin first.
export CARGO=/usr/bin/cargo
CLIPPY=(/usr/bin/cargo-clippy clippy)
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1 # -Zbuild-std on a stable rustc
export CARGO_TARGET_DIR="$CROSS_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
test -f "$($RUSTC --print sysroot)/lib/rustlib/src/rust/library/Cargo.lock" || {
  echo "cross-check: no std source for $($RUSTC -V); install rust-web-src" >&2
  exit 1
}
rustc_v=$(dpkg-query -W -f='${Version}' rustc-web)
for p in rust-web-src rust-web-clippy; do
  v=$(dpkg-query -W -f='${Version}' $p)
  [ "$rustc_v" = "$v" ] || {
    echo "cross-check: rustc-web $rustc_v but $p $v; apt-get install them in one command" >&2
    exit 1
  }
done
$RUSTC -V
$CARGO -V
"${CLIPPY[@]}" --version

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
# The target's environment (darwin: clang for ring's C), then the command.
on() { # TARGET COMMAND...
  local tu=${1//-/_} env=()
  case $1 in
    *-apple-darwin) env=("CC_$tu=clang-14" "AR_$tu=llvm-ar-14" "CFLAGS_$tu=$darwin_cflags") ;;
  esac
  shift
  env "${env[@]}" "$@"
}
# std,test for every command and target: the std set of `cargo test`, so
# that one std build per target serves clippy, build and test.
zflags() { printf '%s\n' --locked -Zbuild-std=std,test --target "$1"; }
run() { # NAME COMMAND...: one timed step; a failure is recorded, not fatal
  local name=$1
  shift
  step "$name"
  if "$@"; then
    took "$name ok"
  else
    took "$name FAILED"
    failed+=("$name")
  fi
}

# Clippy replaces `cargo check`: the same type check, plus the lints.
for t in "${TARGETS[@]}"; do
  mapfile -t z < <(zflags "$t")
  run "clippy $t" on "$t" "${CLIPPY[@]}" "${z[@]}" --all-targets -- -D warnings
done

mapfile -t z < <(zflags $WIN)
run "build $WIN" $CARGO build "${z[@]}"

# Wine: a prefix of its own, created once (no display here, so no Mono or
# Gecko install prompts: mscoree and mshtml are disabled while it boots).
# -all silences Wine's fixme noise; err+module keeps DLL-loader errors
# visible (with plain -all a missing DLL is a silent exit code 53).
step "wine prefix"
export WINEPREFIX="${WINEPREFIX:-$HOME/.wine-cross}"
export WINEDEBUG="${WINEDEBUG:--all,err+module}"
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  WINEDLLOVERRIDES="mscoree,mshtml=" wine wineboot --init </dev/null
  wineserver -w
fi
# Rust std >= 1.78 imports ProcessPrng from bcryptprimitives.dll, which Wine
# 8.0 (bookworm) lacks: without this stub the loader fails (status c0000135,
# exit code 53).
stub="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [ ! -f "$stub" ]; then
  cat >"$CROSS_TARGET_DIR/tools/bcryptprimitives.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len); /* RtlGenRandom */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n; len -= n;
    }
    return TRUE;
}
C
  x86_64-w64-mingw32-gcc -O2 -shared -s -o "$stub" \
    "$CROSS_TARGET_DIR/tools/bcryptprimitives.c" -ladvapi32
fi
took "wine prefix"

# Every test binary runs as `wine <test>.exe`; a failing test exits 101.
# --no-fail-fast: one failing binary does not hide the others' results.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
run "test $WIN (Wine)" $CARGO test "${z[@]}" --no-fail-fast </dev/null
# Let the prefix's wineserver exit, but never wait on a stray process.
timeout 30 wineserver -w || wineserver -k

step "done"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "cross-check: failed: ${failed[*]}" >&2
  exit 1
fi
