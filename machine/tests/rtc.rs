//! The MC146818A: clock formats, calendar rollovers, setting the time, UIP
//! timing, periodic, alarm and update-ended interrupts in virtual time,
//! register C, the NMI mask bit, the PC's NVRAM and start-time parsing,
//! through the `Device` interface.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::rtc::{
    parse_rtc_start, DiskGeometry, Rtc, RtcTimeError, DEFAULT_START, RTC_IRQ,
};

const SEC: u64 = 1_000_000_000;
/// The update cycle, datasheet Table 6.
const TUC: u64 = 1_984_000;

/// The virtual time at which period `k` of the 32.768 kHz time base ends.
fn tick_ns(k: u64) -> u64 {
    (k as u128 * SEC as u128).div_ceil(32_768) as u64
}

fn at(s: &str) -> i64 {
    parse_rtc_start(s).unwrap()
}

/// An RTC on its own, with a clock and the IRQ 8 level it drove.
struct Rig {
    rtc: Rtc,
    now: u64,
    irq: Vec<(u8, bool)>,
    req: Vec<Request>,
    line: bool,
    rises: Vec<u64>,
}

impl Rig {
    fn new(start: i64) -> Rig {
        Rig {
            rtc: Rtc::new(start),
            now: 0,
            irq: vec![],
            req: vec![],
            line: false,
            rises: vec![],
        }
    }

    fn absorb(&mut self) {
        for (l, v) in self.irq.drain(..) {
            assert_eq!(l, RTC_IRQ, "only IRQ 8");
            if v && !self.line {
                self.rises.push(self.now);
            }
            self.line = v;
        }
    }

    fn outb(&mut self, port: u16, value: u8) {
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        self.rtc.pio_write(0, port - 0x70, 1, value as u32, &mut cx);
        self.absorb();
    }

    fn inb(&mut self, port: u16) -> u8 {
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        let v = self.rtc.pio_read(0, port - 0x70, 1, &mut cx) as u8;
        self.absorb();
        v
    }

    fn read(&mut self, reg: u8) -> u8 {
        self.outb(0x70, reg | 0x80);
        self.inb(0x71)
    }

    fn write(&mut self, reg: u8, value: u8) {
        self.outb(0x70, reg | 0x80);
        self.outb(0x71, value);
    }

    /// Registers 0, 2, 4, 6, 7, 8, 9 and the century.
    fn clock(&mut self) -> [u8; 8] {
        [0, 2, 4, 6, 7, 8, 9, 0x32].map(|r| self.read(r))
    }

    /// Moves time to `ns`, ticking the RTC whenever its deadline passes, as
    /// the bus does.
    fn run_to(&mut self, ns: u64) {
        while let Some(d) = self.rtc.next_deadline() {
            if d > ns {
                break;
            }
            assert!(d >= self.now, "deadline in the past");
            self.now = d;
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.rtc.tick(&mut cx);
            self.absorb();
            assert_ne!(self.rtc.next_deadline(), Some(d), "tick moves the deadline");
        }
        self.now = ns;
    }
}

#[test]
fn reads_a_known_instant_in_bcd_and_binary() {
    // A Thursday.
    let mut r = Rig::new(at("2024-02-29T13:45:07"));
    assert_eq!(r.read(0x0B), 0x02, "24-hour BCD at power-on");
    assert_eq!(r.clock(), [0x07, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
    r.write(0x0B, 0x06);
    assert_eq!(r.clock(), [7, 45, 13, 5, 29, 2, 24, 20]);
    assert_eq!(r.read(0x0A), 0x26);
    assert_eq!(r.read(0x0D), 0x80, "VRT");
    assert_eq!(r.rtc.time_at(0), at("2024-02-29T13:45:07"));
    // 2026-01-01 is a Thursday too.
    let mut r = Rig::new(DEFAULT_START);
    assert_eq!(r.clock(), [0, 0, 0, 0x05, 0x01, 0x01, 0x26, 0x20]);
}

#[test]
fn twelve_hour_mode_sets_pm_in_bit_7() {
    for (time, bcd, bin) in [
        ("2024-05-01T13:00:00", 0x81, 0x81),
        ("2024-05-01T23:59:00", 0x91, 0x8B),
        ("2024-05-01T00:30:00", 0x12, 0x0C),
        ("2024-05-01T12:00:00", 0x92, 0x8C),
        ("2024-05-01T11:00:00", 0x11, 0x0B),
    ] {
        let mut r = Rig::new(at(time));
        r.write(0x0B, 0x00);
        assert_eq!(r.read(0x04), bcd, "{time} BCD");
        r.write(0x0B, 0x04);
        assert_eq!(r.read(0x04), bin, "{time} binary");
    }
    // A 12-hour value written by the guest: 3 PM.
    let mut r = Rig::new(at("2024-05-01T09:00:00"));
    r.write(0x0B, 0x80);
    r.write(0x04, 0x83);
    assert_eq!(r.read(0x04), 0x83);
    r.write(0x0B, 0x00);
    assert_eq!(r.rtc.time_at(r.now), at("2024-05-01T15:00:00"));
    r.run_to(SEC);
    r.write(0x0B, 0x02);
    assert_eq!(r.read(0x04), 0x15);
}

#[test]
fn calendar_rolls_over_days_months_years_and_centuries() {
    for (from, to) in [
        (
            "2023-12-31T23:59:59",
            [0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x24, 0x20],
        ),
        (
            "2023-02-28T23:59:59",
            [0x00, 0x00, 0x00, 0x04, 0x01, 0x03, 0x23, 0x20],
        ),
        (
            "2024-02-28T23:59:59",
            [0x00, 0x00, 0x00, 0x05, 0x29, 0x02, 0x24, 0x20],
        ),
        (
            "2024-02-29T23:59:59",
            [0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20],
        ),
        (
            "2000-02-28T23:59:59",
            [0x00, 0x00, 0x00, 0x03, 0x29, 0x02, 0x00, 0x20],
        ),
        (
            "2024-04-30T23:59:59",
            [0x00, 0x00, 0x00, 0x04, 0x01, 0x05, 0x24, 0x20],
        ),
        (
            "2099-12-31T23:59:59",
            [0x00, 0x00, 0x00, 0x06, 0x01, 0x01, 0x00, 0x21],
        ),
    ] {
        let mut r = Rig::new(at(from));
        r.run_to(SEC - 1);
        assert_eq!(r.read(0x00), 0x59, "{from}");
        r.run_to(SEC);
        assert_eq!(r.clock(), to, "{from}");
    }
    // 2100 is not a leap year (the century byte makes it visible).
    let mut r = Rig::new(at("2099-12-31T00:00:00") + 60 * 86_400 - 1);
    assert_eq!(r.clock()[4..], [0x28, 0x02, 0x00, 0x21]);
    r.run_to(SEC);
    assert_eq!(r.clock()[4..], [0x01, 0x03, 0x00, 0x21]);
}

#[test]
fn the_guest_sets_the_time_with_set() {
    let mut r = Rig::new(DEFAULT_START);
    r.now = 300_000_000;
    r.write(0x0B, 0x82);
    // 2030-06-15 08:30:00, a Saturday.
    for (reg, v) in [
        (0, 0x00),
        (2, 0x30),
        (4, 0x08),
        (6, 0x07),
        (7, 0x15),
        (8, 0x06),
        (9, 0x30),
    ] {
        r.write(reg, v);
    }
    assert_eq!(r.clock(), [0x00, 0x30, 0x08, 0x07, 0x15, 0x06, 0x30, 0x20]);
    // Frozen: no update and no UIP while SET is 1.
    r.run_to(5 * SEC - 100_000);
    assert_eq!(r.read(0x0A) & 0x80, 0);
    r.run_to(5 * SEC + 300_000_000);
    assert_eq!(r.read(0x00), 0x00);
    r.write(0x0B, 0x02);
    // The divider kept running: the next update is on its grid, at 6 s.
    r.run_to(6 * SEC - 1);
    assert_eq!(r.read(0x00), 0x00);
    r.run_to(6 * SEC);
    assert_eq!(r.clock(), [0x01, 0x30, 0x08, 0x07, 0x15, 0x06, 0x30, 0x20]);
    assert_eq!(r.rtc.time_at(r.now), at("2030-06-15T08:30:01"));
    // Clearing SET without writing resumes from the frozen time.
    r.write(0x0B, 0x82);
    r.run_to(20 * SEC);
    r.write(0x0B, 0x02);
    r.run_to(21 * SEC);
    assert_eq!(r.read(0x00), 0x02);
}

#[test]
fn written_registers_read_back_then_normalise() {
    let mut r = Rig::new(at("2023-02-10T10:00:00"));
    r.write(0x0B, 0x82);
    // Day 31 while the month is still February, then the month.
    r.write(0x07, 0x31);
    assert_eq!(r.read(0x07), 0x31);
    r.write(0x08, 0x01);
    r.write(0x00, 0x75);
    assert_eq!(r.read(0x00), 0x75);
    r.write(0x0B, 0x02);
    assert_eq!(r.clock()[..3], [0x75, 0x00, 0x10]);
    r.run_to(SEC);
    // 10:00:75 is 10:01:15, plus the update.
    assert_eq!(r.rtc.time_at(r.now), at("2023-01-31T10:01:16"));
    assert_eq!(r.clock()[..3], [0x16, 0x01, 0x10]);
    // Without SET a write takes effect at once.
    r.write(0x02, 0x45);
    assert_eq!(r.rtc.time_at(r.now), at("2023-01-31T10:45:16"));
    r.run_to(2 * SEC);
    assert_eq!(r.clock()[..3], [0x17, 0x45, 0x10]);
}

#[test]
fn a_written_day_of_week_is_kept_and_advances_at_midnight() {
    let mut r = Rig::new(at("2024-01-01T23:59:58"));
    assert_eq!(r.read(0x06), 0x02, "a Monday");
    r.write(0x06, 0x07);
    r.run_to(SEC);
    assert_eq!(r.read(0x06), 0x07);
    r.run_to(2 * SEC);
    assert_eq!(r.read(0x06), 0x01, "7 wraps to 1");
}

#[test]
fn uip_is_set_exactly_from_tbuc_before_an_update_to_its_end() {
    let mut r = Rig::new(DEFAULT_START);
    for s in 1..=3u64 {
        let edge = s * 32_768;
        let rise = tick_ns(edge - 8);
        let end = tick_ns(edge) + TUC;
        assert_eq!(tick_ns(edge), s * SEC);
        assert_eq!(rise, s * SEC - 244_140, "244.140625 µs before");
        for (t, uip) in [
            (s * SEC - 500_000_000, false),
            (rise - 1, false),
            (rise, true),
            (s * SEC - 1, true),
            (s * SEC, true),
            (end - 1, true),
            (end, false),
        ] {
            r.run_to(t);
            assert_eq!(
                r.read(0x0A),
                0x26 | if uip { 0x80 } else { 0 },
                "second {s}, t {t}"
            );
        }
    }
    // The seconds change at the start of the cycle.
    r.run_to(4 * SEC - 1);
    assert_eq!(r.read(0x00), 0x03);
    r.run_to(4 * SEC);
    assert_eq!(r.read(0x00), 0x04);
    // SET clears UIP.
    r.run_to(5 * SEC - 100_000);
    assert_eq!(r.read(0x0A) & 0x80, 0x80);
    r.write(0x0B, 0x82);
    assert_eq!(r.read(0x0A) & 0x80, 0);
}

#[test]
fn divider_reset_stops_the_clock_and_the_first_update_comes_500_ms_after() {
    let mut r = Rig::new(DEFAULT_START);
    r.now = 300_000_000;
    assert_eq!(r.read(0x0C), 0x40);
    r.write(0x0A, 0x66);
    r.run_to(10 * SEC);
    assert_eq!(r.read(0x00), 0x00);
    assert_eq!(r.read(0x0A), 0x66, "no UIP in reset");
    assert_eq!(r.read(0x0C), 0x00, "no periodic flag in reset");
    // Released at 10.25 s: first update at 10.75 s, the periodic grid
    // (rate 15, 500 ms) starts at the release.
    r.now = 10 * SEC + 250_000_000;
    r.write(0x0A, 0x2F);
    r.write(0x0B, 0x52); // PIE, UIE
    r.run_to(10 * SEC + 750_000_000 - 1);
    assert_eq!(r.read(0x00), 0x00);
    assert!(r.rises.is_empty());
    r.run_to(10 * SEC + 750_000_000);
    assert_eq!(r.read(0x00), 0x01);
    assert_eq!(r.rises, [10 * SEC + 750_000_000], "periodic edge");
    assert_eq!(r.read(0x0C), 0xC0);
    r.run_to(10 * SEC + 750_000_000 + TUC);
    assert_eq!(r.read(0x0C), 0x90, "update ended");
    r.run_to(11 * SEC + 250_000_000);
    assert_eq!(r.read(0x0C), 0xC0);
}

#[test]
fn periodic_interrupts_at_rate_6_are_1024_per_second_on_the_grid() {
    let mut r = Rig::new(DEFAULT_START);
    r.write(0x0B, 0x42);
    let mut edges = 0u64;
    while let Some(d) = r.rtc.next_deadline() {
        if d > SEC {
            break;
        }
        edges += 1;
        // Edge k is 32 periods of the time base after edge k - 1.
        assert_eq!(
            d,
            (edges as u128 * 1_953_125).div_ceil(2) as u64,
            "edge {edges}"
        );
        r.run_to(d - 1);
        assert!(!r.line);
        r.run_to(d);
        assert!(r.line, "edge {edges}");
        assert_eq!(r.rtc.next_deadline(), None, "line high: nothing to do");
        assert_eq!(r.read(0x0C), 0xC0);
        assert!(!r.line);
    }
    assert_eq!(edges, 1024);
    assert_eq!(r.rises.last(), Some(&SEC));
    assert_eq!(r.rtc.stats().periodic_irqs, 1024);
    // The grid does not drift: edge 1024 * 60 is at 60 s exactly.
    r.run_to(60 * SEC - 1);
    r.read(0x0C);
    assert_eq!(r.rtc.next_deadline(), Some(60 * SEC));
}

#[test]
fn pf_is_set_without_pie_but_wakes_nothing() {
    let mut r = Rig::new(DEFAULT_START);
    assert_eq!(r.rtc.next_deadline(), None, "an idle RTC costs nothing");
    r.run_to(10_000_000);
    assert_eq!(r.rtc.peek(0x0C, r.now), 0x40);
    assert_eq!(r.read(0x0C), 0x40, "PF, no IRQF");
    assert_eq!(r.read(0x0C), 0x00);
    assert!(r.rises.is_empty());
    // Enabling PIE with PF already set raises the line at once.
    r.run_to(20_000_000);
    r.write(0x0B, 0x42);
    assert_eq!(r.rises, [20_000_000]);
    // Rate 0: no periodic flag.
    r.read(0x0C);
    r.write(0x0A, 0x20);
    r.run_to(900_000_000);
    assert_eq!(r.read(0x0C), 0x00);
    assert_eq!(r.rtc.next_deadline(), None);
}

#[test]
fn rates_1_and_2_are_256_and_128_hz() {
    for (rate, period) in [(1u8, 128u64), (2, 256), (3, 4), (15, 16_384)] {
        let mut r = Rig::new(DEFAULT_START);
        r.write(0x0A, 0x20 | rate);
        r.write(0x0B, 0x42);
        assert_eq!(r.rtc.next_deadline(), Some(tick_ns(period)), "rate {rate}");
    }
}

#[test]
fn reading_c_clears_the_flags_and_drops_the_line() {
    let mut r = Rig::new(DEFAULT_START);
    r.write(0x0B, 0x12); // UIE
    assert_eq!(r.rtc.next_deadline(), Some(SEC + TUC));
    r.run_to(SEC + TUC);
    assert!(r.line);
    assert_eq!(r.rtc.next_deadline(), None);
    r.run_to(3 * SEC);
    assert_eq!(r.rtc.peek(0x0C, r.now) & 0x90, 0x90);
    assert!(r.line, "peek does not clear");
    assert_eq!(r.read(0x0C), 0xD0, "IRQF, UF and the lazy PF");
    assert!(!r.line);
    assert_eq!(r.read(0x0C), 0x00);
    assert_eq!(r.rtc.next_deadline(), Some(3 * SEC + TUC));
    // Disabling UIE with UF set drops the line too.
    r.run_to(4 * SEC);
    assert!(r.line);
    r.write(0x0B, 0x02);
    assert!(!r.line);
    assert_eq!(r.read(0x0C), 0x50);
}

#[test]
fn update_ended_interrupts_come_once_a_second() {
    let mut r = Rig::new(DEFAULT_START);
    r.write(0x0B, 0x12);
    for s in 1..=5u64 {
        r.run_to(s * SEC + TUC - 1);
        assert!(!r.line);
        r.run_to(s * SEC + TUC);
        assert!(r.line);
        assert_eq!(r.read(0x0C) & 0x90, 0x90);
        assert_eq!(r.read(0x00), s as u8);
    }
    assert_eq!(r.rises.len(), 5);
    assert_eq!(r.rtc.stats().update_irqs, 5);
    assert_eq!(r.rtc.stats().updates, 5);
    // SET clears UIE.
    r.write(0x0B, 0x92);
    assert_eq!(r.read(0x0B), 0x82);
}

#[test]
fn alarms_with_dont_care_fields_fire_once_a_minute_or_an_hour() {
    // Every minute at second 30.
    let mut r = Rig::new(DEFAULT_START);
    r.write(0x01, 0x30);
    r.write(0x03, 0xC0);
    r.write(0x05, 0xFF);
    r.write(0x0B, 0x22);
    for m in 0..3u64 {
        let t = (60 * m + 30) * SEC + TUC;
        assert_eq!(r.rtc.next_deadline(), Some(t));
        r.run_to(t);
        assert!(r.line);
        assert_eq!(r.read(0x0C), 0xF0, "IRQF, the lazy PF, AF and UF");
        assert_eq!(r.read(0x00), 0x30);
    }
    assert_eq!(r.rises.len(), 3);
    assert_eq!(r.rtc.stats().alarm_irqs, 3);

    // Every hour at minute 15, 12-hour binary mode.
    let mut r = Rig::new(DEFAULT_START + 3600 * 11);
    r.write(0x0B, 0x24);
    r.write(0x01, 0x00);
    r.write(0x03, 15);
    r.write(0x05, 0xC0);
    for h in 0..3u64 {
        let t = (3600 * h + 900) * SEC + TUC;
        assert_eq!(r.rtc.next_deadline(), Some(t), "hour {h}");
        r.run_to(t);
        assert!(r.line);
        r.read(0x0C);
    }
    assert_eq!(r.rtc.stats().alarm_irqs, 3);
    // An exact 12-hour alarm: 2:15:00 PM, the next day's one after that.
    r.write(0x05, 0x82);
    let t = (3 * 3600 + 900) * SEC + TUC;
    assert_eq!(r.rtc.next_deadline(), Some(t));
    r.run_to(t);
    r.read(0x0C);
    assert_eq!(r.rtc.next_deadline(), Some(t + 86_400 * SEC));
    // An alarm that can never match has no deadline.
    r.write(0x01, 0x3C + 60);
    assert_eq!(r.rtc.next_deadline(), None);
}

#[test]
fn af_is_set_without_aie() {
    let mut r = Rig::new(DEFAULT_START);
    r.write(0x01, 0x05);
    r.write(0x03, 0xC0);
    r.write(0x05, 0xC0);
    r.run_to(4 * SEC + TUC);
    assert_eq!(r.read(0x0C) & 0x30, 0x10, "UF only");
    r.run_to(5 * SEC + TUC - 1);
    assert_eq!(r.read(0x0C) & 0x30, 0x00);
    r.run_to(5 * SEC + TUC);
    assert_eq!(r.read(0x0C) & 0x30, 0x30);
    // A long jump over the match still finds it.
    r.run_to(5000 * SEC);
    assert_eq!(r.read(0x0C) & 0x30, 0x30);
    assert!(r.rises.is_empty());
}

#[test]
fn index_port_masks_nmi_and_reads_ff() {
    let mut r = Rig::new(DEFAULT_START);
    assert!(!r.rtc.nmi_masked());
    r.outb(0x70, 0x8F);
    assert!(r.rtc.nmi_masked());
    assert_eq!(r.inb(0x70), 0xFF);
    r.outb(0x71, 0x0A);
    r.outb(0x70, 0x0F);
    assert!(!r.rtc.nmi_masked());
    assert_eq!(
        r.inb(0x71),
        0x0A,
        "shutdown status, NMI bit not part of the index"
    );
    assert_eq!(r.rtc.stats().index_writes, 2);
}

fn checksum_ok(rtc: &Rtc) -> bool {
    let sum: u16 = (0x10..=0x2D).map(|i| rtc.nvram(i) as u16).sum();
    rtc.nvram(0x2E) == (sum >> 8) as u8 && rtc.nvram(0x2F) == sum as u8
}

#[test]
fn nvram_memory_sizes() {
    let mut rtc = Rtc::new(DEFAULT_START);
    rtc.set_memory_sizes(32 << 20);
    let b = |i: u8| rtc.nvram(i);
    assert_eq!([b(0x15), b(0x16)], [0x80, 0x02], "640 KiB");
    assert_eq!(
        [b(0x17), b(0x18), b(0x30), b(0x31)],
        [0x00, 0x7C, 0x00, 0x7C],
        "31 MiB"
    );
    assert_eq!([b(0x34), b(0x35)], [0x00, 0x01], "16 MiB in 64 KiB units");
    assert_eq!([b(0x5B), b(0x5C), b(0x5D)], [0, 0, 0]);
    assert!(checksum_ok(&rtc));
    assert_eq!([b(0x2E), b(0x2F)], [0x00, 0x80 + 0x02 + 0x7C]);

    rtc.set_memory_sizes(1 << 30);
    let b = |i: u8| rtc.nvram(i);
    assert_eq!(
        [b(0x17), b(0x18), b(0x30), b(0x31)],
        [0x00, 0xFC, 0x00, 0xFC],
        "63 MiB cap"
    );
    assert_eq!([b(0x34), b(0x35)], [0x00, 0x3F], "1008 MiB");
    assert!(checksum_ok(&rtc));

    rtc.set_memory_sizes(6 << 30);
    let b = |i: u8| rtc.nvram(i);
    assert_eq!([b(0x34), b(0x35)], [0x00, 0xFF], "4 GiB - 16 MiB");
    assert_eq!(
        [b(0x5B), b(0x5C), b(0x5D)],
        [0x00, 0x80, 0x00],
        "2 GiB above 4 GiB"
    );
}

#[test]
fn nvram_equipment_disks_and_checksum() {
    let mut r = Rig::new(DEFAULT_START);
    r.rtc.set_equipment(0x02);
    r.rtc.set_hard_disks([
        Some(DiskGeometry {
            cylinders: 1024,
            heads: 16,
            sectors: 63,
        }),
        None,
    ]);
    assert_eq!(r.read(0x10), 0x00, "no floppies");
    assert_eq!(r.read(0x12), 0xF0);
    assert_eq!(r.read(0x14), 0x02);
    assert_eq!(r.read(0x19), 47);
    assert_eq!(r.read(0x1A), 0);
    let params: Vec<u8> = (0x1B..0x24).map(|i| r.read(i)).collect();
    assert_eq!(params, [0x00, 0x04, 16, 0xFF, 0xFF, 0xC8, 0x00, 0x04, 63]);
    assert!(checksum_ok(&r.rtc));
    let sum = 0xF0 + 0x02 + 47 + 0x04 + 16 + 0xFF + 0xFF + 0xC8 + 0x04 + 63;
    assert_eq!([r.read(0x2E), r.read(0x2F)], [(sum >> 8) as u8, sum as u8]);
    // Guest writes do not touch the checksum; setters do.
    r.write(0x2D, 0x20);
    assert!(!checksum_ok(&r.rtc));
    r.rtc.set_nvram(0x5F, 1);
    assert!(checksum_ok(&r.rtc));
    assert_eq!(r.read(0x5F), 1);
    assert_eq!(r.read(0x0E), 0);
    assert_eq!(r.read(0x7F), 0);
}

#[test]
fn parses_start_times() {
    assert_eq!(parse_rtc_start("2026-01-01"), Ok(DEFAULT_START));
    assert_eq!(parse_rtc_start("2026-01-01T00:00:00Z"), Ok(DEFAULT_START));
    assert_eq!(parse_rtc_start("1970-01-01T00:00:00"), Ok(0));
    assert_eq!(parse_rtc_start("2000-02-29 12:34:56"), Ok(951_827_696));
    assert_eq!(parse_rtc_start("2099-12-31T23:59:59"), Ok(4_102_444_799));
    for (s, e) in [
        (
            "2023-02-29",
            RtcTimeError::Day {
                year: 2023,
                month: 2,
                day: 29,
                last: 28,
            },
        ),
        (
            "2024-04-31",
            RtcTimeError::Day {
                year: 2024,
                month: 4,
                day: 31,
                last: 30,
            },
        ),
        ("2024-13-01", RtcTimeError::Month(13)),
        ("2024-00-10", RtcTimeError::Month(0)),
        ("1969-12-31", RtcTimeError::Year(1969)),
        ("2100-01-01", RtcTimeError::Year(2100)),
        ("2024-01-01T24:00:00", RtcTimeError::Hour(24)),
        ("2024-01-01T10:60:00", RtcTimeError::Minute(60)),
        ("2024-01-01T10:00:60", RtcTimeError::Second(60)),
    ] {
        assert_eq!(parse_rtc_start(s), Err(e), "{s}");
    }
    for s in [
        "",
        "2024",
        "2024-1-01",
        "24-01-01",
        "2024-01-01T10:00",
        "2024-01-01T+1:00:00",
        "now",
        "2024-01-01T10:00:00+02:00",
    ] {
        assert_eq!(
            parse_rtc_start(s),
            Err(RtcTimeError::Format(s.to_string())),
            "{s:?}"
        );
    }
    let msg = parse_rtc_start("2023-02-29").unwrap_err().to_string();
    assert_eq!(msg, "RTC start day 29 out of range 1-28 for 2023-02");
    assert!(!msg.contains('\n'));
}

#[test]
fn no_guest_input_panics() {
    let mut r = Rig::new(DEFAULT_START);
    for i in 0..=255u8 {
        for v in [0x00, 0x59, 0x7F, 0x80, 0x9A, 0xC0, 0xFF] {
            r.write(i, v);
            r.read(i);
            r.run_to(r.now + 777_777_777);
        }
    }
    r.write(0x0B, 0x7F);
    r.write(0x0A, 0x2F);
    r.run_to(r.now + 100 * SEC);
}
