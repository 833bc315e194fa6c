//! The machine as a whole: devices wired together through the bus, the
//! clock and the IRQ lines, as an engine sees them.

use machine::{Machine, MachineConfig, MachineStop};

fn machine() -> Machine {
    Machine::new(MachineConfig::with_ram(4 << 20)).unwrap()
}

/// The PC/AT initialisation of the 8259A pair with vectors 0x20 and 0x28.
fn init_pic(m: &mut Machine, master_mask: u8, slave_mask: u8) {
    for (port, v) in [
        (0x20, 0x11),
        (0xA0, 0x11),
        (0x21, 0x20),
        (0xA1, 0x28),
        (0x21, 0x04),
        (0xA1, 0x02),
        (0x21, 0x01),
        (0xA1, 0x01),
        (0x21, master_mask),
        (0xA1, slave_mask),
    ] {
        m.io_write(port, 1, v as u32);
    }
}

#[test]
fn pit_mode_2_interrupts_at_its_rate_through_the_pic() {
    let mut m = machine();
    init_pic(&mut m, 0xFE, 0xFF);
    // Counter 0, lobyte/hibyte, mode 2, count 11932: 100.0 Hz.
    m.io_write(0x43, 1, 0x34);
    m.io_write(0x40, 1, 11932 & 0xFF);
    m.io_write(0x40, 1, 11932 >> 8);
    assert!(!m.interrupt_pending());
    let period_ns = (11932u128 * 1_000_000_000).div_ceil(1_193_182) as u64;
    let d = m.next_deadline().expect("the PIT schedules its first edge");
    assert!(
        d.abs_diff(period_ns) < 2_000,
        "first IRQ0 after one period: {d} vs {period_ns}"
    );
    // Run the clock to just before the deadline: nothing yet.
    m.retire(d - 1);
    assert!(!m.interrupt_pending());
    m.retire(1);
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x20);
    assert!(!m.interrupt_pending(), "in service, not requested");
    // A second tick before EOI stays pending in IRR but is not signalled
    // (same priority level in service).
    let d2 = m.next_deadline().unwrap();
    assert!((d2 - d).abs_diff(period_ns) < 2);
    assert!(m.warp_to_deadline());
    assert!(!m.interrupt_pending());
    m.io_write(0x20, 1, 0x20); // non-specific EOI
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x20);
    assert_eq!(m.clock.warp_stats().0, 1);
}

#[test]
fn uart_irq_reaches_the_cpu_on_irq4() {
    let mut m = machine();
    init_pic(&mut m, !0x10, 0xFF);
    m.io_write(0x3FB, 1, 0x03); // 8N1
    m.io_write(0x3FC, 1, 0x08); // OUT2 routes INTR to the PIC
    m.io_write(0x3F9, 1, 0x01); // received-data interrupt
    assert!(!m.interrupt_pending());
    m.serial_input(b"k");
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x24);
    assert_eq!(
        m.io_read(0x3FA, 1) & 0x0F,
        0x04,
        "IIR: received data available"
    );
    assert_eq!(m.io_read(0x3F8, 1), b'k' as u32);
}

#[test]
fn com1_output_and_word_length() {
    let mut m = machine();
    m.io_write(0x3FB, 1, 0x03);
    for b in b"hi\n" {
        m.io_write(0x3F8, 1, *b as u32);
    }
    assert_eq!(m.serial_output(), b"hi\n");
    assert_eq!(m.io_read(0x3FD, 1) & 0x60, 0x60, "THRE and TEMT");
    // 7-bit words: the top bit is not sent.
    m.io_write(0x3FB, 1, 0x02);
    m.io_write(0x3F8, 1, 0xC1);
    assert_eq!(m.take_serial_output(), b"hi\n\x41");
}

#[test]
fn a20_gate_wraps_addresses_at_one_mebibyte() {
    let mut m = machine();
    m.write_phys(0x0000_0010, 1, 0xAA);
    m.write_phys(0x0010_0010, 1, 0xBB);
    assert_eq!(m.read_phys(0x0010_0010, 1), 0xBB);
    assert_eq!(m.io_read(0x92, 1) & 2, 2, "A20 on at power-on");
    let gen = m.mapping_generation();
    m.io_write(0x92, 1, 0x00);
    assert_ne!(m.mapping_generation(), gen, "engines learn the map changed");
    assert_eq!(m.a20_mask(), !(1 << 20));
    // FFFF:0020 = 0x100010 wraps to 0x10, as on an 8086.
    assert_eq!(m.read_phys(0x0010_0010, 1), 0xAA);
    m.write_phys(0x0010_0011, 1, 0xCC);
    assert_eq!(m.mem.read_u8(0x11), Some(0xCC));
    m.io_write(0x92, 1, 0x02);
    assert_eq!(m.read_phys(0x0010_0010, 1), 0xBB);
}

#[test]
fn outside_ram_reads_all_ones_and_never_touches_host_memory() {
    let mut m = machine();
    assert_eq!(m.read_phys(0xFFFF_FFFC, 4), 0xFFFF_FFFF);
    assert_eq!(m.read_phys(0x0040_0000, 8), u64::MAX);
    // Straddling the end of RAM: the RAM byte, then all ones.
    m.mem.write_u8(0x3F_FFFF, 0x12).unwrap();
    assert_eq!(m.read_phys(0x3F_FFFF, 2), 0xFF12);
    m.write_phys(0x3F_FFFF, 2, 0x3456);
    assert_eq!(m.mem.read_u8(0x3F_FFFF), Some(0x56));
    m.write_phys(0xFFFF_FFFF, 4, 0);
    assert_eq!(m.bus.stats.unclaimed_mmio_writes, 5);
}

#[test]
fn exit_ports_and_post_codes() {
    let mut m = machine();
    m.io_write(0x80, 1, 0x11);
    m.io_write(0x80, 1, 0x22);
    m.io_write(0x80, 1, 0x11);
    assert_eq!(m.post_codes(), &[0x11, 0x22, 0x11]);
    assert_eq!(m.stop_requested(), None);
    m.io_write(0xE9, 1, b'd' as u32);
    assert_eq!(m.debugcon_output(), b"d");
    assert_eq!(m.io_read(0xE9, 1), 0xE9);
    m.io_write(0xF4, 4, 0x1234_5678);
    assert_eq!(m.stop_requested(), Some(MachineStop::Exit(0x1234_5678)));

    let mut m = machine();
    for b in b"ShShutdow" {
        m.io_write(0x8900, 1, *b as u32);
    }
    assert_eq!(m.stop_requested(), None);
    m.io_write(0x8900, 1, b'n' as u32);
    assert_eq!(m.stop_requested(), Some(MachineStop::Shutdown));
}

#[test]
fn unclaimed_ports_read_all_ones_and_are_counted() {
    let mut m = machine();
    assert_eq!(m.io_read(0x2F8, 1), 0xFF);
    assert_eq!(m.io_read(0x278, 2), 0xFFFF);
    assert_eq!(m.io_read(0xCFC, 4), 0xFFFF_FFFF);
    m.io_write(0x378, 1, 0);
    assert_eq!(m.bus.stats.unclaimed_pio_reads, 3);
    assert_eq!(m.bus.stats.unclaimed_pio_writes, 1);
    // An ATA channel without drives floats: all ones, but claimed.
    assert_eq!(m.io_read(0x1F7, 1), 0xFF);
    assert_eq!(m.io_read(0x1F0, 2), 0xFFFF);
    assert_eq!(m.bus.stats.unclaimed_pio_reads, 3);
}
