#!/usr/bin/env bash
# Builds xv6, MIT's x86 teaching Unix (github.com/mit-pdos/xv6-public,
# MIT licence), into the two disks ringlab boots it from, and prints their
# paths on stdout, one a line:
#
#   .../xv6.img   boot block + kernel: the first disk (the BIOS boots it)
#   .../fs.img    the file system with the user programs: the second disk
#
# Progress and errors go to stderr. Run it with
#
#   ringlab run --mem 512 --snapshot --disk .../xv6.img --disk .../fs.img
#
# (--mem 512 as xv6's `make qemu` gives QEMU: its kernel uses memory up to
# PHYSTOP, 224 MiB; --snapshot keeps xv6's writes to fs.img in memory.)
#
# Nothing of xv6 is in this repository: the source is taken, in order, from
#   1. $RINGLAB_XV6_SRC, a directory with xv6's source (a checkout);
#   2. ../shared/guests/xv6-public beside the repository (as on CI; see its
#      README);
#   3. a clone of $RINGLAB_XV6_URL (default github.com/mit-pdos/xv6-public)
#      at the pinned commit eeb7b415 (xv6-public's last), made once into
#      target/xv6/upstream-eeb7b415 (needs git and the network).
# The source is read, never written: it is copied into a build directory
# under target/xv6 and built there with Debian's gcc and binutils (no cross
# compiler), xv6's own Makefile and its sources unchanged; only CFLAGS is
# given on make's command line (see XV6_CFLAGS below).
#
# The images are cached in target/xv6/<key>/, where <key> is a hash of the
# source tree (every file's path and contents), the flags and the compiler
# and linker versions: a changed source, flag or toolchain builds again, an
# unchanged one prints the cached paths at once. A cached image that a run
# wrote to (ringlab run without --snapshot) is put back as built. The build
# log is target/xv6/<key>/build.log. `rm -rf target/xv6` clears it all.
#
# Needs (Debian packages): gcc, make, binutils (ld, objcopy, objdump) and
# perl (xv6's sign.pl and vectors.pl); gcc-multilib only where this gcc
# cannot compile -m32; libc6-dev for mkfs, which is built for the host; git
# for the clone. It installs nothing: it names what is missing and stops.
#
#   scripts/xv6-images.sh                     build (or find) the images
#   scripts/xv6-images.sh --missing-packages  print the Debian packages the
#                                             build lacks here, on one line
#                                             (empty: none); builds nothing
#
# Exit status: 0 done; 1 the build failed (the end of its log is shown);
# 2 bad usage; 3 a tool is missing (the packages are named); 4 no source:
# the clone failed (no network?) or RINGLAB_XV6_SRC is not xv6.
set -euo pipefail

# xv6-public's last commit (10 August 2020): what ../shared/guests/xv6-public
# holds.
XV6_COMMIT=eeb7b415dbcb12cc362d0783e41c3d1f44066b17
XV6_URL=${RINGLAB_XV6_URL:-https://github.com/mit-pdos/xv6-public.git}

# The CFLAGS of xv6's Makefile without -Werror: Debian's gcc 12 warns about
# mp.c (-Warray-bounds on the BIOS area pointers) and sh.c
# (-Winfinite-recursion in runcmd), which -Werror would stop on. Giving
# CFLAGS on the command line also replaces what the Makefile appends to
# it, so that is repeated here: -fno-stack-protector, and -fno-pie -no-pie
# for gcc configured with --enable-default-pie, as Debian's is.
XV6_CFLAGS="-fno-pic -static -fno-builtin -fno-strict-aliasing -O2 -Wall -MD -ggdb -m32"
XV6_CFLAGS+=" -fno-omit-frame-pointer -fno-stack-protector -fno-pie -no-pie"
XV6_TARGETS=(xv6.img fs.img)
# xv6's ASFLAGS, given too for the path map below.
XV6_ASFLAGS="-m32 -gdwarf-2 -Wa,-divide"
# The build directory's path goes into the debug information of every
# object (DW_AT_comp_dir), and so into the size of each user program that
# mkfs puts into fs.img, which `ls` shows: it is mapped to /xv6, so the
# images are the same whatever directory (checkout, process ID) built them.
XV6_PATH_MAP=/xv6

say() { echo "xv6-images: $*" >&2; }
die() {
    local status=$1
    shift
    say "$*"
    exit "$status"
}

mode=build
case "${1:-}" in
"") ;;
--missing-packages) mode=missing ;;
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
*) die 2 "unknown argument '$1' (try --help)" ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/xv6

# --- what the build needs -----------------------------------------------

# The Debian packages missing for the build ("git" too when the source
# must be cloned), as a space-separated list.
missing_packages() {
    local need_git=$1 pkgs=() tmp
    command -v gcc >/dev/null || pkgs+=(gcc)
    command -v make >/dev/null || pkgs+=(make)
    { command -v ld && command -v objcopy && command -v objdump; } >/dev/null || pkgs+=(binutils)
    command -v perl >/dev/null || pkgs+=(perl)
    command -v sha256sum >/dev/null || pkgs+=(coreutils)
    if [ "$need_git" = yes ] && ! command -v git >/dev/null; then pkgs+=(git); fi
    if command -v gcc >/dev/null; then
        tmp=$(mktemp -d)
        # The kernel and the user programs: 32-bit code, no system headers.
        if ! echo 'int f(int x) { return x + 1; }' |
            gcc -m32 -fno-pic -c -x c - -o "$tmp/m32.o" 2>/dev/null; then
            pkgs+=(gcc-multilib)
        fi
        # mkfs: a host program, with the C library's headers.
        if ! printf '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n' |
            gcc -x c - -o "$tmp/host" 2>/dev/null; then
            pkgs+=(libc6-dev)
        fi
        rm -rf "$tmp"
    fi
    echo "${pkgs[*]:-}"
}

# --- where the source is --------------------------------------------------

shared=$(cd "$root/.." && pwd)/shared/guests/xv6-public
clone=$out/upstream-${XV6_COMMIT:0:8}

# Sets src and src_what, or leaves src empty when only a clone will do.
find_source() {
    src=""
    if [ -n "${RINGLAB_XV6_SRC:-}" ]; then
        src=$RINGLAB_XV6_SRC
        src_what="RINGLAB_XV6_SRC"
        if [ "$mode" = build ] && { [ ! -f "$src/Makefile" ] || [ ! -f "$src/kernel.ld" ] || [ ! -f "$src/mkfs.c" ]; }; then
            die 4 "RINGLAB_XV6_SRC=$src is not xv6's source (no Makefile, kernel.ld, mkfs.c there)"
        fi
    elif [ -d "$shared" ]; then
        src=$shared
        src_what="the shared copy"
    elif [ -f "$clone/.done" ]; then
        src=$clone
        src_what="cloned earlier at ${XV6_COMMIT:0:8}"
    fi
}

find_source
if [ "$mode" = missing ]; then
    missing_packages "$([ -n "$src" ] && echo no || echo yes)"
    exit 0
fi

lacking=$(missing_packages "$([ -n "$src" ] && echo no || echo yes)")
if [ -n "$lacking" ]; then
    die 3 "missing to build xv6: $lacking (Debian packages); install them with
    sudo apt-get install $lacking"
fi

# Clones the pinned commit into $clone: a shallow fetch of that commit
# (GitHub serves any commit by its full hash), else the whole history.
clone_source() {
    say "no xv6 source beside the repository ($shared) and RINGLAB_XV6_SRC is not set:"
    say "cloning $XV6_URL at ${XV6_COMMIT:0:8} into $clone (once; needs the network)"
    local tmp=$clone.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp"
    local ok=no
    # No credential prompt: a public repository needs none, and a prompt
    # would hang a test run.
    export GIT_TERMINAL_PROMPT=0
    if git -C "$tmp" init -q &&
        { git -C "$tmp" fetch -q --depth 1 "$XV6_URL" "$XV6_COMMIT" ||
            { say "a shallow fetch of the commit failed; fetching the whole history" &&
                git -C "$tmp" fetch -q "$XV6_URL"; }; } &&
        git -C "$tmp" -c advice.detachedHead=false checkout -q "$XV6_COMMIT" &&
        [ "$(git -C "$tmp" rev-parse HEAD)" = "$XV6_COMMIT" ]; then
        ok=yes
    fi
    if [ "$ok" != yes ]; then
        rm -rf "$tmp"
        die 4 "could not get xv6 from $XV6_URL at $XV6_COMMIT (no network?).
    Put the source at $shared, or set RINGLAB_XV6_SRC to a directory
    holding mit-pdos/xv6-public at that commit."
    fi
    touch "$tmp/.done"
    rm -rf "$clone"
    mv "$tmp" "$clone"
    src=$clone
    src_what="cloned from $XV6_URL at ${XV6_COMMIT:0:8}"
}

mkdir -p "$out"
# One build at a time (tests may run this in parallel): the second waits
# and then finds the images cached.
if command -v flock >/dev/null; then
    exec 9>"$out/.lock"
    flock 9
fi

[ -n "$src" ] || clone_source
src=$(cd "$src" && pwd)
say "source: $src ($src_what)"

# --- the cache key ----------------------------------------------------------

key=$(
    {
        echo "cflags $XV6_CFLAGS"
        echo "asflags $XV6_ASFLAGS"
        echo "build path mapped to $XV6_PATH_MAP"
        echo "targets ${XV6_TARGETS[*]}"
        gcc --version | head -n 1
        ld --version | head -n 1
        cd "$src" &&
            find . -type f ! -path './.git/*' ! -name .done -print0 | LC_ALL=C sort -z |
            xargs -0 sha256sum
    } | sha256sum | cut -c1-16
)
dir=$out/$key

# Cached: the images as built, put back if a run wrote to them.
if [ -f "$dir/.done" ]; then
    for img in "${XV6_TARGETS[@]}"; do
        if ! cmp -s "$dir/build/$img" "$dir/$img"; then
            say "$img was written to since it was built: restoring it"
            cp "$dir/build/$img" "$dir/$img.tmp"
            mv "$dir/$img.tmp" "$dir/$img"
        fi
    done
    say "cached: $dir (source and flags unchanged)"
    for img in "${XV6_TARGETS[@]}"; do echo "$dir/$img"; done
    exit 0
fi

# --- the build --------------------------------------------------------------

tmp=$out/$key.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp/build"
# A writable copy without the clone's .git (the source may be read-only).
(cd "$src" && find . -mindepth 1 -maxdepth 1 ! -name .git ! -name .done -exec cp -R {} "$tmp/build/" \;)
chmod -R u+w "$tmp/build"
# make runs ./sign.pl and ./vectors.pl, which a plain copy may have left
# without the execute bit.
chmod u+x "$tmp/build"/*.pl
say "building ${XV6_TARGETS[*]} in $dir/build (make CFLAGS=\"$XV6_CFLAGS\"; log: $dir/build.log)"
# Keeps the log of a failed build where it can be read, shows its end and
# stops.
failed() {
    mkdir -p "$out/failed"
    cp "$tmp/build.log" "$out/failed/build.log"
    say "$1; the end of its log ($out/failed/build.log):"
    tail -n 25 "$tmp/build.log" >&2
    exit 1
}
start=$SECONDS
# `make clean` first: a source directory someone built in (RINGLAB_XV6_SRC)
# brings its objects along, made with other flags.
make -C "$tmp/build" clean </dev/null >"$tmp/build.log" 2>&1 || failed "make clean failed"
map="-fdebug-prefix-map=$tmp/build=$XV6_PATH_MAP"
make -C "$tmp/build" CFLAGS="$XV6_CFLAGS $map" ASFLAGS="$XV6_ASFLAGS $map" "${XV6_TARGETS[@]}" \
    </dev/null >>"$tmp/build.log" 2>&1 ||
    failed "the build failed"
for img in "${XV6_TARGETS[@]}"; do
    [ -s "$tmp/build/$img" ] || failed "make succeeded but left no $img"
    cp "$tmp/build/$img" "$tmp/$img"
done
touch "$tmp/.done"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
say "built in $((SECONDS - start)) s: $dir"
say "run it: ringlab run --mem 512 --snapshot --disk $dir/xv6.img --disk $dir/fs.img"
for img in "${XV6_TARGETS[@]}"; do echo "$dir/$img"; done
