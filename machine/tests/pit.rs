//! The 8254: modes, reads and latches, the read-back command, port 0x61, and
//! IRQ0 timing in virtual time, through the `Device` interface and through
//! the machine.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::pit::{Pit, PIT_HZ};
use machine::{Machine, MachineConfig};

/// The virtual time of CLK edge `k`: the first nanosecond by which `k`
/// periods of the 1.193182 MHz clock have elapsed since power-on.
fn edge_ns(k: u64) -> u64 {
    (k as u128 * 1_000_000_000).div_ceil(PIT_HZ as u128) as u64
}

/// CLK edges elapsed at virtual time `ns`.
fn edges_at(ns: u64) -> u64 {
    (ns as u128 * PIT_HZ as u128 / 1_000_000_000) as u64
}

/// A PIT on its own, with a clock and the IRQ lines it drove.
struct Rig {
    pit: Pit,
    now: u64,
    irq: Vec<(u8, bool)>,
    req: Vec<Request>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            pit: Pit::new(),
            now: 0,
            irq: vec![],
            req: vec![],
        }
    }

    fn region(port: u16) -> (usize, u16) {
        match port {
            0x40..=0x43 => (0, port - 0x40),
            0x61 => (1, 0),
            _ => panic!("not a PIT port: {port:#x}"),
        }
    }

    fn outb(&mut self, port: u16, value: u8) {
        let (r, off) = Self::region(port);
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        self.pit.pio_write(r, off, 1, value as u32, &mut cx);
    }

    fn inb(&mut self, port: u16) -> u8 {
        let (r, off) = Self::region(port);
        let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
        self.pit.pio_read(r, off, 1, &mut cx) as u8
    }

    /// Moves to CLK edge `k`.
    fn at_edge(&mut self, k: u64) {
        self.now = edge_ns(k);
    }

    /// Moves time to `ns`, ticking the PIT whenever its deadline passes, as
    /// the bus does.
    fn run_to(&mut self, ns: u64) {
        self.now = ns;
        while let Some(d) = self.pit.next_deadline() {
            if d > self.now {
                break;
            }
            let mut cx = IoCtx::new(self.now, &mut self.irq, &mut self.req);
            self.pit.tick(&mut cx);
        }
    }

    /// IRQ0 rising edges sent since the last call.
    fn take_pulses(&mut self) -> usize {
        let n = self.irq.iter().filter(|&&(l, v)| l == 0 && v).count();
        assert!(self.irq.iter().all(|&(l, _)| l == 0), "only IRQ0");
        self.irq.clear();
        n
    }

    /// Programs counter `ch` with control word `cw` and a two-byte count.
    fn program(&mut self, cw: u8, count: u16) {
        let port = 0x40 + (cw >> 6) as u16;
        self.outb(0x43, cw);
        self.outb(port, count as u8);
        self.outb(port, (count >> 8) as u8);
    }

    /// Latches and reads counter `ch` (two-byte access).
    fn latched(&mut self, ch: u8) -> u16 {
        self.outb(0x43, ch << 6);
        let lo = self.inb(0x40 + ch as u16);
        let hi = self.inb(0x40 + ch as u16);
        lo as u16 | (hi as u16) << 8
    }

    /// Read-back of counter `ch`'s status byte.
    fn status(&mut self, ch: u8) -> u8 {
        self.outb(0x43, 0xE0 | 2 << ch);
        self.inb(0x40 + ch as u16)
    }
}

#[test]
fn mode_2_interrupts_every_n_clocks_without_drift() {
    for n in [11932u64, 1193, 2, 65535] {
        let mut r = Rig::new();
        // Written at t = 0: loaded at edge 1, OUT low at edge N, back high
        // (the IRQ0 edge) at edge N + 1 and every N after.
        r.program(0x34, n as u16);
        assert_eq!(r.take_pulses(), 0);
        let periods = if n < 100 { 5000 } else { 1000 };
        let first = r.pit.next_deadline().unwrap();
        for m in 1..=periods {
            let reload = 1 + m * n;
            let d = r.pit.next_deadline().unwrap();
            assert_eq!(d, edge_ns(reload), "N {n}, period {m}");
            r.run_to(d - 1);
            assert_eq!(r.take_pulses(), 0);
            assert!(
                !r.pit.channel_out(0, d - 1),
                "OUT low the clock before the reload"
            );
            assert_eq!(r.pit.count(0, d - 1), 1);
            r.run_to(d);
            assert_eq!(r.take_pulses(), 1, "N {n}, period {m}");
            assert!(r.pit.channel_out(0, d));
            assert_eq!(r.pit.count(0, d), n as u16, "reloaded");
        }
        // No drift: the last edge is exactly `periods` periods after the
        // first, to the nanosecond rounding of the grid.
        let last = edge_ns(1 + periods * n);
        let exact = ((periods - 1) * n) as f64 * 1e9 / PIT_HZ as f64;
        assert!(((last - first) as f64 - exact).abs() < 1.0, "N {n}");
        assert_eq!(r.pit.stats().irq0_pulses, periods);
        assert_eq!(r.pit.stats().irq0_coalesced, 0);
    }
}

#[test]
fn mode_2_counts_n_down_to_1() {
    let mut r = Rig::new();
    r.at_edge(1000);
    r.program(0x34, 5);
    // Loaded at edge 1001.
    let seq: Vec<u16> = (1001..1012).map(|k| r.pit.count(0, edge_ns(k))).collect();
    assert_eq!(seq, [5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5]);
    let out: Vec<bool> = (1001..1012)
        .map(|k| r.pit.channel_out(0, edge_ns(k)))
        .collect();
    let h = true;
    let l = false;
    assert_eq!(out, [h, h, h, h, l, h, h, h, h, l, h]);
    // Halfway between edges nothing changes.
    assert_eq!(r.pit.count(0, edge_ns(1002) + 300), 4);
}

#[test]
fn mode_3_square_wave_for_even_and_odd_counts() {
    let h = true;
    let l = false;
    for (n, counts, outs) in [
        (
            4u16,
            vec![4u16, 2, 4, 2, 4, 2, 4, 2],
            vec![h, h, l, l, h, h, l, l],
        ),
        (
            5,
            vec![4, 2, 0, 4, 2, 4, 2, 0, 4, 2],
            vec![h, h, h, l, l, h, h, h, l, l],
        ),
    ] {
        let mut r = Rig::new();
        r.program(0x36, n);
        // Read through the ports: latch command, LSB, MSB.
        let mut seen = vec![];
        let mut out = vec![];
        for k in 1..1 + counts.len() as u64 {
            r.at_edge(k);
            seen.push(r.latched(0));
            out.push(r.status(0) & 0x80 != 0);
        }
        assert_eq!(seen, counts, "N {n}");
        assert_eq!(out, outs, "N {n}");
    }
    // Duty cycle over a whole period: ceil(N/2) high, floor(N/2) low.
    for n in [10u64, 11, 65535, 3] {
        let mut r = Rig::new();
        r.program(0x36, n as u16);
        let high = (1..1 + n)
            .filter(|&k| r.pit.channel_out(0, edge_ns(k)))
            .count() as u64;
        assert_eq!((high, n - high), (n.div_ceil(2), n / 2), "N {n}");
        // IRQ0 at the start of each high half: edges 1 + m*N.
        for m in 1..=3 {
            let d = r.pit.next_deadline().unwrap();
            assert_eq!(d, edge_ns(1 + m * n));
            r.run_to(d);
            assert_eq!(r.take_pulses(), 1);
            assert!(r.pit.channel_out(0, d));
            assert!(!r.pit.channel_out(0, d - 1));
        }
    }
}

#[test]
fn mode_0_interrupts_once_at_terminal_count() {
    let mut r = Rig::new();
    r.now = 5_000; // edge 5
    r.outb(0x43, 0x30);
    assert!(
        !r.pit.channel_out(0, r.now),
        "OUT low after the control word"
    );
    r.outb(0x40, 100);
    r.outb(0x40, 0);
    // Loaded at edge 6, terminal count N = 100 edges later.
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(106)));
    assert!(!r.pit.channel_out(0, edge_ns(106) - 1));
    assert_eq!(r.pit.count(0, edge_ns(105)), 1);
    r.run_to(edge_ns(106));
    assert_eq!(r.take_pulses(), 1);
    assert!(r.pit.channel_out(0, r.now));
    assert_eq!(r.pit.count(0, r.now), 0);
    assert_eq!(r.pit.next_deadline(), None, "one interrupt only");
    // OUT stays high; the counter wraps and keeps counting.
    r.run_to(edge_ns(107));
    assert_eq!(r.pit.count(0, r.now), 0xFFFF);
    r.run_to(edge_ns(100_000));
    assert!(r.pit.channel_out(0, r.now));
    assert_eq!(r.take_pulses(), 0);

    // A new count restarts it: OUT low again, a new terminal count.
    r.at_edge(200_000);
    r.outb(0x40, 10);
    assert!(!r.pit.channel_out(0, r.now), "the first byte sets OUT low");
    assert_eq!(r.pit.next_deadline(), None, "and stops counting");
    r.outb(0x40, 0);
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(200_011)));
    r.run_to(edge_ns(200_011));
    assert_eq!(r.take_pulses(), 1);
}

#[test]
fn mode_0_through_the_machine_gives_one_interrupt() {
    let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
    for (port, v) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0x21, 0xFE),
    ] {
        m.io_write(port, 1, v);
    }
    m.io_write(0x43, 1, 0x30);
    m.io_write(0x40, 1, 0xE8);
    m.io_write(0x40, 1, 0x03); // 1000 clocks
    assert_eq!(m.next_deadline(), Some(edge_ns(1001)));
    assert!(m.warp_to_deadline());
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x20);
    m.io_write(0x20, 1, 0x20);
    assert!(!m.interrupt_pending());
    assert_eq!(m.next_deadline(), None);
    assert!(!m.warp_to_deadline());
}

#[test]
fn latch_command_freezes_the_count_until_read() {
    let mut r = Rig::new();
    r.program(0x34, 1000);
    r.at_edge(101); // 100 edges after the load: CE = 900
    r.outb(0x43, 0x00);
    r.at_edge(401);
    // A second latch before the first is read is ignored.
    r.outb(0x43, 0x00);
    r.at_edge(501);
    assert_eq!(r.inb(0x40), (900 & 0xFF) as u8);
    r.at_edge(601);
    assert_eq!(r.inb(0x40), (900 >> 8) as u8);
    // Read out, the latch follows CE again: 1000 - 600.
    let live = r.inb(0x40) as u16 | (r.inb(0x40) as u16) << 8;
    assert_eq!(live, 400);
    assert_eq!(r.latched(0), 400);
    // Unlatched two-byte reads see CE move between the bytes.
    r.at_edge(611);
    let lo = r.inb(0x40);
    r.at_edge(611 + 256);
    let hi = r.inb(0x40);
    assert_eq!((lo, hi), ((390 & 0xFF) as u8, ((390 - 256) >> 8) as u8));
}

#[test]
fn lsb_msb_and_word_access() {
    let mut r = Rig::new();
    // LSB only: the MSB is 0.
    r.outb(0x43, 0x14);
    r.outb(0x40, 0x80);
    r.at_edge(1);
    assert_eq!(r.pit.count(0, r.now), 0x80);
    assert_eq!(r.inb(0x40), 0x80);
    assert_eq!(r.inb(0x40), 0x80, "every read is the LSB");
    // MSB only: the LSB is 0.
    r.outb(0x43, 0x24);
    r.outb(0x40, 0x12);
    r.at_edge(2);
    assert_eq!(r.pit.count(0, r.now), 0x1200);
    assert_eq!(r.inb(0x40), 0x12);
    r.at_edge(3);
    assert_eq!(r.pit.count(0, r.now), 0x11FF);
    assert_eq!(r.inb(0x40), 0x11);
    // LSB then MSB, reads and writes interleaved (datasheet, "Read
    // Operations"): each has its own flip-flop. The control word stops the
    // counter until the new count is loaded.
    r.outb(0x43, 0x34);
    r.outb(0x40, 0x34);
    r.at_edge(4);
    assert_eq!(r.pit.count(0, r.now), 0x11FF, "half a count loads nothing");
    assert_eq!(r.inb(0x40), 0xFF);
    r.outb(0x40, 0x12);
    assert_eq!(r.inb(0x40), 0x11, "not loaded before the next CLK");
    r.at_edge(5);
    assert_eq!(r.pit.count(0, r.now), 0x1234);
    r.at_edge(6);
    assert_eq!(r.inb(0x40), 0x33);
    assert_eq!(r.inb(0x40), 0x12);
}

#[test]
fn read_back_status_and_null_count() {
    let mut r = Rig::new();
    assert_eq!(
        r.status(0),
        0xF6,
        "power-on: OUT high, null count, mode 3, word"
    );
    r.at_edge(10);
    r.outb(0x43, 0x34);
    assert_eq!(r.status(0), 0xC0 | 0x34, "OUT high in mode 2, no count yet");
    r.outb(0x40, 0x00);
    r.outb(0x40, 0x01);
    assert_eq!(r.status(0), 0xC0 | 0x34, "written, not yet loaded");
    r.at_edge(11);
    assert_eq!(r.status(0), 0x80 | 0x34, "loaded on the next CLK");
    // A new count in mode 2 waits for the reload: null count until then.
    r.at_edge(100);
    r.outb(0x40, 0x80);
    r.outb(0x40, 0x00);
    assert_eq!(r.status(0) & 0x40, 0x40);
    r.at_edge(11 + 255);
    assert_eq!(r.status(0) & 0x40, 0x40);
    r.at_edge(11 + 256);
    assert_eq!(r.status(0) & 0x40, 0);

    // Mode 0, BCD: OUT low after the control word.
    r.outb(0x43, 0x71);
    assert_eq!(r.status(1), 0x40 | 0x31);

    // Count and status together, for two counters: status first, then the
    // count, whatever order they were latched in.
    r.program(0xB4, 0x1234); // counter 2, mode 2; GATE 2 is low
    r.at_edge(400);
    r.outb(0x43, 0xC0 | 0x08 | 0x02); // counters 0 and 2
    r.at_edge(500);
    let s2 = r.inb(0x42);
    assert_eq!(s2, 0x80 | 0x34, "mode 2 OUT high, count loaded");
    assert_eq!(r.inb(0x42) as u16 | (r.inb(0x42) as u16) << 8, 0x1234);
    let s0 = r.inb(0x40);
    assert_eq!(s0 & 0x3F, 0x34);
    // Reprogramming discards what is latched (here counter 0's count from
    // the read-back above, and a new status latch).
    r.outb(0x43, 0xE2);
    r.outb(0x43, 0x30); // counter 0: mode 0, OUT low
    r.outb(0x43, 0xE2);
    // Only the first status latch counts until it is read.
    r.outb(0x40, 5);
    r.outb(0x40, 0);
    r.at_edge(600);
    r.outb(0x43, 0xE2 | 0x08); // counter 0 ignored; counter 2 latched
    assert_eq!(r.inb(0x40), 0x70, "OUT low, null count: the first latch");
    assert_eq!(
        r.inb(0x40),
        5u16.wrapping_sub(600 - 501) as u8,
        "wrapped past 0"
    );
    assert_eq!(r.status(0), 0x80 | 0x30, "terminal count passed");
    assert_eq!(r.inb(0x42), 0x80 | 0x34);
}

#[test]
fn count_zero_is_the_largest_count() {
    let mut r = Rig::new();
    r.program(0x34, 0);
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(1 + 65536)));
    assert_eq!(r.pit.count(0, edge_ns(1)), 0);
    assert_eq!(r.pit.count(0, edge_ns(2)), 0xFFFF);
    // BCD: 0 is 10000, and reads are in BCD digits.
    let mut r = Rig::new();
    r.program(0x35, 0);
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(1 + 10_000)));
    assert_eq!(r.pit.count(0, edge_ns(2)), 0x9999);
    r.at_edge(1 + 1234);
    assert_eq!(r.latched(0), 0x8766);
    // BCD 0x0100 is one hundred clocks.
    r.program(0x35, 0x0100);
    let load = 1 + 1234 + 1;
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(load + 100)));
}

#[test]
fn port_61_gates_counter_2_and_shows_out2() {
    let mut r = Rig::new();
    assert_eq!(
        r.inb(0x61) & 0xEF,
        0x20,
        "GATE 2 low, OUT2 high at power-on"
    );
    // Mode 0 with the gate low: loaded, but not counting.
    r.program(0xB0, 1000);
    r.at_edge(500);
    assert_eq!(r.pit.count(2, r.now), 1000);
    assert_eq!(r.inb(0x61) & 0x20, 0, "OUT2 low in mode 0");
    r.outb(0x61, 0x01);
    assert!(r.pit.gate(2));
    r.at_edge(500 + 999);
    assert_eq!(r.pit.count(2, r.now), 1);
    assert_eq!(r.inb(0x61) & 0x20, 0);
    // Gate low pauses it one short of terminal count.
    r.outb(0x61, 0x00);
    r.at_edge(5000);
    assert_eq!(r.pit.count(2, r.now), 1);
    r.outb(0x61, 0x01);
    r.at_edge(5001);
    assert_eq!(r.inb(0x61) & 0x21, 0x21, "terminal count: OUT2 high");
    // Counter 2 never interrupts.
    assert_eq!(r.pit.next_deadline(), None);
    assert_eq!(r.take_pulses(), 0);

    // The speaker recipe: mode 3, gate and data bits. GATE low holds OUT
    // high; the rising gate starts the square wave at the next CLK.
    r.outb(0x61, 0x00);
    r.program(0xB6, 6);
    r.at_edge(6000);
    r.outb(0x61, 0x03);
    assert_eq!(r.inb(0x61) & 0x0F, 0x03, "bits 0-3 read back");
    let out2: Vec<bool> = (6001..6013)
        .map(|k| {
            r.at_edge(k);
            r.inb(0x61) & 0x20 != 0
        })
        .collect();
    let h = true;
    let l = false;
    assert_eq!(out2, [h, h, h, l, l, l, h, h, h, l, l, l]);
    r.at_edge(6016);
    assert_eq!(r.inb(0x61) & 0x20, 0, "low half");
    r.outb(0x61, 0x02);
    assert_eq!(r.inb(0x61) & 0x20, 0x20, "GATE low sets OUT high at once");
    assert_eq!(r.inb(0x61) & 0xC0, 0, "no parity or channel check errors");

    // Refresh requests toggle bit 4 every 18 clocks (15.085 us).
    let mut r = Rig::new();
    let bit4: Vec<u8> = [0u64, 17, 18, 35, 36, 54]
        .iter()
        .map(|&k| {
            r.at_edge(k);
            r.inb(0x61) & 0x10
        })
        .collect();
    assert_eq!(bit4, [0, 0, 0x10, 0x10, 0, 0x10]);
}

#[test]
fn mode_1_one_shot_triggered_by_gate_2() {
    let mut r = Rig::new();
    r.program(0xB2, 10);
    r.at_edge(100);
    assert!(r.pit.channel_out(2, r.now), "armed: OUT high");
    assert_eq!(r.status(2) & 0x40, 0x40, "null count until a trigger");
    r.outb(0x61, 0x01);
    assert!(r.pit.channel_out(2, r.now));
    r.at_edge(101);
    assert!(
        !r.pit.channel_out(2, r.now),
        "low from the CLK after the trigger"
    );
    assert_eq!(r.status(2) & 0x40, 0);
    r.at_edge(110);
    assert!(!r.pit.channel_out(2, r.now));
    r.at_edge(111);
    assert!(r.pit.channel_out(2, r.now), "high after N clocks");
    // Retriggering during the pulse restarts it.
    r.outb(0x61, 0x00);
    r.at_edge(200);
    r.outb(0x61, 0x01);
    r.at_edge(205);
    r.outb(0x61, 0x00);
    r.outb(0x61, 0x01);
    r.at_edge(215);
    assert!(!r.pit.channel_out(2, r.now));
    r.at_edge(216);
    assert!(r.pit.channel_out(2, r.now));
}

#[test]
fn mode_4_and_5_strobes() {
    // Mode 4 on counter 0: OUT low for one clock at terminal count; IRQ0
    // when it goes back up, N + 1 clocks after the load.
    let mut r = Rig::new();
    r.program(0x38, 50);
    assert!(r.pit.channel_out(0, r.now));
    assert_eq!(r.pit.next_deadline(), Some(edge_ns(52)));
    assert!(!r.pit.channel_out(0, edge_ns(51)));
    assert!(r.pit.channel_out(0, edge_ns(50)));
    r.run_to(edge_ns(52));
    assert_eq!(r.take_pulses(), 1);
    assert_eq!(r.pit.next_deadline(), None);

    // Mode 5 on counter 2: the gate's rising edge starts it.
    r.program(0xBA, 20);
    r.at_edge(1000);
    assert!(
        r.pit.channel_out(2, edge_ns(1500)),
        "nothing without a trigger"
    );
    r.outb(0x61, 0x01);
    assert!(r.pit.channel_out(2, edge_ns(1020)));
    assert!(!r.pit.channel_out(2, edge_ns(1021)));
    assert!(r.pit.channel_out(2, edge_ns(1022)));
}

#[test]
fn a_new_count_waits_for_the_end_of_the_cycle() {
    // Mode 2: the end of the current period.
    let mut r = Rig::new();
    r.program(0x34, 100);
    r.at_edge(31);
    r.outb(0x40, 50);
    r.outb(0x40, 0);
    assert_eq!(r.pit.count(0, edge_ns(99)), 2, "the old sequence runs on");
    assert_eq!(r.pit.count(0, edge_ns(100)), 1);
    let mut rises = vec![];
    for _ in 0..3 {
        let d = r.pit.next_deadline().unwrap();
        rises.push(edges_at(d));
        r.run_to(d);
    }
    assert_eq!(rises, [101, 151, 201]);
    assert_eq!(r.pit.count(0, edge_ns(101)), 50);

    // Mode 3: the end of the current half-cycle.
    let mut r = Rig::new();
    r.program(0x36, 100);
    r.at_edge(31); // high half, edges 1..51
    r.outb(0x40, 40);
    r.outb(0x40, 0);
    assert_eq!(r.pit.count(0, edge_ns(50)), 2);
    // At 51 the low half begins with the new count: 20 clocks low.
    assert!(!r.pit.channel_out(0, edge_ns(51)));
    assert_eq!(r.pit.count(0, edge_ns(51)), 40);
    let mut rises = vec![];
    for _ in 0..3 {
        let d = r.pit.next_deadline().unwrap();
        rises.push(edges_at(d));
        r.run_to(d);
    }
    assert_eq!(rises, [71, 111, 151]);
}

#[test]
fn a_control_word_raising_out0_is_an_irq_edge() {
    let mut r = Rig::new();
    r.outb(0x43, 0x30);
    assert!(!r.pit.channel_out(0, 0));
    assert_eq!(r.take_pulses(), 0);
    r.now = 10_000;
    r.outb(0x43, 0x34);
    assert_eq!(r.take_pulses(), 1, "OUT0 went from low to high");
    r.outb(0x43, 0x36);
    assert_eq!(r.take_pulses(), 0);
}

#[test]
fn a_jump_in_time_gives_one_irq_and_keeps_the_phase() {
    let n = 11932u64;
    let mut r = Rig::new();
    r.program(0x34, n as u16);
    r.run_to(1_000_000_000);
    assert_eq!(r.take_pulses(), 1, "one pulse for about 100 edges");
    assert_eq!(r.pit.stats().irq0_coalesced, 1);
    let d = r.pit.next_deadline().unwrap();
    let e = edges_at(1_000_000_000);
    let next = 1 + ((e - 1) / n + 1) * n;
    assert_eq!(d, edge_ns(next), "on the load + k*N grid");
    assert!(d > 1_000_000_000 && d - 1_000_000_000 <= edge_ns(n) + 1);

    // The same through the machine: a halted CPU warps, one interrupt.
    let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
    for (port, v) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0x21, 0xFE),
    ] {
        m.io_write(port, 1, v);
    }
    m.io_write(0x43, 1, 0x34);
    m.io_write(0x40, 1, (n & 0xFF) as u32);
    m.io_write(0x40, 1, (n >> 8) as u32);
    m.retire(1_000_000_000);
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x20);
    m.io_write(0x20, 1, 0x20);
    assert!(!m.interrupt_pending(), "only one IRQ0 was latched");
    assert_eq!(m.next_deadline(), Some(edge_ns(next)));
    assert!(m.warp_to_deadline());
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x20);
    assert_eq!(m.next_deadline(), Some(edge_ns(next + n)));
}

#[test]
fn reading_the_control_port_floats() {
    let mut r = Rig::new();
    assert_eq!(r.inb(0x43), 0xFF);
}
