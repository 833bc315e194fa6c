#!/usr/bin/env bash
# The README's test command (and what .ci/run runs): every test of the
# workspace, then the KVM tests on real hardware virtualization.
#
# 1. cargo test --workspace --release: unit tests, the 80286 conformance
#    corpus, the protected-mode guests and the lessons on the interpreter,
#    each guest also on this host's KVM where it can run (on kvm-pvm, or
#    without /dev/kvm, the KVM runs that cannot happen print why).
# 2. Unless this host's KVM is hardware virtualization (kvm_intel or
#    kvm_amd), where step 1 already ran everything on it:
#    scripts/kvm-vm-tests.sh runs the KVM tests again inside a QEMU/SVM
#    virtual machine with a genuine kvm_amd, where nothing may skip.
#
# Installs what it needs with apt-get (GNU binutils and tmux here; QEMU and busybox
# in kvm-vm-tests.sh). RINGLAB_NO_VM=1 leaves out step 2.
set -euo pipefail
cd "$(dirname "$0")/.."

# GNU binutils (as --32, ld -m elf_i386, objcopy) build the guest images in
# lessons/build.rs and in the tests.
if ! command -v as >/dev/null || ! command -v ld >/dev/null || ! command -v objcopy >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq binutils
fi

# tmux runs `ringlab step` in a real terminal for its UI test
# (frontend/tests/step_tui.rs).
if ! command -v tmux >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq tmux
fi

cargo test --workspace --release

if [ "${RINGLAB_NO_VM:-0}" = 1 ]; then
    echo "test.sh: RINGLAB_NO_VM=1: the KVM tests in the QEMU/SVM VM are left out"
elif [ ! -e /sys/module/kvm_pvm ] && { [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; } \
    && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    echo "test.sh: this host's KVM is hardware virtualization: the KVM tests ran on it above"
else
    echo "test.sh: this host has no hardware virtualization for KVM (kvm-pvm or no /dev/kvm):"
    echo "test.sh: running the KVM tests in a QEMU/SVM virtual machine"
    scripts/kvm-vm-tests.sh
fi
