//! The PC platform from a driver's side: guests in tests/guests that
//! program the ATA disks, the 8042 and keyboard, the RTC, the APICs and
//! COM1 as an OS does, run on every engine with the same transcript
//! (tests::platform).

use tests::platform::run_everywhere;

#[test]
fn rtc_date_reads_the_fixed_start_in_bcd() {
    let t = run_everywhere("rtc-date", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    rtc date: 2026-01-01
    ");
}

#[test]
fn nmis_ignore_if_obey_the_port_70_mask_and_wait_for_iret() {
    let t = run_everywhere("nmi", &|_| {});
    insta::assert_snapshot!(t, @r"
    stop: guest exit through port 0xf4 with value 0x0
    --- COM1 ---
    NMI with IF=0, count 1
    NMI masked at port 0x70, count 1
    mask cleared, count 2
    NMI sent inside the handler, count 4
    order: abc<>d
    ");
}
