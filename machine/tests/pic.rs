//! The 8259A pair: initialization, priorities, EOIs, rotation, reads, poll,
//! masks, spurious interrupts, trigger modes; through the `Device` interface
//! and through the machine's ports.

use machine::bus::{Device, IoCtx, Request};
use machine::devices::pic::{Pic, MASTER, SLAVE};
use machine::{Machine, MachineConfig};

fn region(port: u16) -> (usize, u16) {
    match port {
        0x20 | 0x21 => (MASTER, port - 0x20),
        0xA0 | 0xA1 => (SLAVE, port - 0xA0),
        _ => panic!("not a PIC port: {port:#x}"),
    }
}

fn outb(pic: &mut Pic, port: u16, value: u8) {
    let (mut irq, mut req): (Vec<(u8, bool)>, Vec<Request>) = (vec![], vec![]);
    let mut cx = IoCtx::new(0, &mut irq, &mut req);
    let (r, off) = region(port);
    pic.pio_write(r, off, 1, value as u32, &mut cx);
}

fn inb(pic: &mut Pic, port: u16) -> u8 {
    let (mut irq, mut req): (Vec<(u8, bool)>, Vec<Request>) = (vec![], vec![]);
    let mut cx = IoCtx::new(0, &mut irq, &mut req);
    let (r, off) = region(port);
    pic.pio_read(r, off, 1, &mut cx) as u8
}

/// The PC/AT initialization: edge-triggered, cascaded (slave on IR2 with
/// ID 2), 8086 mode plus `icw4_extra` on both chips, every line unmasked.
fn at_pic(icw1_extra: u8, master_icw4: u8, slave_icw4: u8) -> Pic {
    let mut pic = Pic::new();
    for (port, v) in [
        (0x20, 0x11 | icw1_extra),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, master_icw4),
        (0xA0, 0x11 | icw1_extra),
        (0xA1, 0x28),
        (0xA1, 0x02),
        (0xA1, slave_icw4),
        (0x21, 0x00),
        (0xA1, 0x00),
    ] {
        outb(&mut pic, port, v);
    }
    pic
}

fn standard() -> Pic {
    at_pic(0, 0x01, 0x01)
}

/// A low-high edge on `line`, left high (what the PIT does).
fn pulse(pic: &mut Pic, line: u8) {
    pic.set_irq(line, false);
    pic.set_irq(line, true);
}

const EOI: u8 = 0x20;

#[test]
fn power_on_state_is_masked_and_silent_until_initialized() {
    let mut pic = Pic::new();
    assert_eq!(pic.imr(), 0xFFFF);
    assert_eq!(pic.irr(), 0);
    assert_eq!(pic.isr(), 0);
    assert!(!pic.initialized(MASTER) && !pic.initialized(SLAVE));
    pic.set_irq(0, true);
    assert!(!pic.intr());
    // Unmasking an uninitialized chip still raises nothing: no vectors yet.
    outb(&mut pic, 0x21, 0x00);
    assert!(!pic.intr());
    // ICW1 resets the edge sense: line 0 is still high, but it needs a new
    // rising edge to request.
    for (port, v) in [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        outb(&mut pic, port, v);
    }
    assert!(pic.initialized(MASTER));
    assert_eq!(pic.imr() & 0xFF, 0x00, "ICW1 clears IMR");
    assert_eq!(pic.irr() & 1, 0);
    assert!(!pic.intr());
    pulse(&mut pic, 0);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x20);
}

#[test]
fn init_sequence_gives_master_and_slave_vectors() {
    let mut pic = standard();
    assert_eq!(pic.vector_base(MASTER), 0x20);
    assert_eq!(pic.vector_base(SLAVE), 0x28);
    assert_eq!(inb(&mut pic, 0x21), 0x00);
    assert_eq!(inb(&mut pic, 0xA1), 0x00);
    pulse(&mut pic, 1);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x21);
    outb(&mut pic, 0x20, EOI);
    pulse(&mut pic, 12);
    assert!(pic.intr(), "the slave's INT reaches the CPU through IR2");
    assert_eq!(pic.acknowledge(), 0x2C);
    assert_eq!(pic.isr(), 0x1004, "slave IR4 and master IR2 in service");
    outb(&mut pic, 0xA0, EOI);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0);

    // ICW2's low three bits are ignored in 8086 mode.
    let mut pic = Pic::new();
    for (port, v) in [(0x20, 0x13), (0x21, 0x47), (0x21, 0x01), (0x21, 0xFE)] {
        outb(&mut pic, port, v);
    }
    assert_eq!(pic.vector_base(MASTER), 0x40);
    pulse(&mut pic, 0);
    assert_eq!(pic.acknowledge(), 0x40);
}

#[test]
fn line_2_is_the_slaves_ir1() {
    let mut pic = standard();
    pic.set_irq(2, true);
    assert_eq!(pic.irr(), 0x0204, "slave IR1, and its INT on master IR2");
    assert_eq!(pic.acknowledge(), 0x29);
}

#[test]
fn several_requests_are_served_in_priority_order() {
    let mut pic = standard();
    for line in [5, 3, 12, 1] {
        pulse(&mut pic, line);
    }
    let mut order = vec![];
    while pic.intr() {
        let v = pic.acknowledge();
        order.push(v);
        if v >= 0x28 {
            outb(&mut pic, 0xA0, EOI);
        }
        outb(&mut pic, 0x20, EOI);
    }
    // IRQ 8-15 sit between IRQ1 and IRQ3: at the master's IR2.
    assert_eq!(order, vec![0x21, 0x2C, 0x23, 0x25]);
    assert_eq!(pic.irr(), 0);
}

#[test]
fn only_a_higher_priority_request_preempts_one_in_service() {
    let mut pic = standard();
    pulse(&mut pic, 4);
    assert_eq!(pic.acknowledge(), 0x24);
    pulse(&mut pic, 6);
    assert!(!pic.intr(), "IRQ6 is below IRQ4, in service");
    pulse(&mut pic, 4);
    assert!(!pic.intr(), "IRQ4 again waits for its own EOI");
    pulse(&mut pic, 1);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x21);
    assert_eq!(pic.isr(), 0x12);
    // The non-specific EOI clears the highest priority level: IRQ1.
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0x10);
    assert!(!pic.intr());
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0);
    assert_eq!(pic.acknowledge(), 0x24);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.acknowledge(), 0x26);
}

#[test]
fn specific_eoi_clears_the_named_level_only() {
    let mut pic = standard();
    pulse(&mut pic, 4);
    pic.acknowledge();
    pulse(&mut pic, 1);
    pic.acknowledge();
    assert_eq!(pic.isr(), 0x12);
    // Specific EOI for level 4 (OCW2 011 00 100), out of nesting order.
    outb(&mut pic, 0x20, 0x64);
    assert_eq!(pic.isr(), 0x02);
    // A specific EOI for a level not in service changes nothing.
    outb(&mut pic, 0x20, 0x65);
    assert_eq!(pic.isr(), 0x02);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0);
    assert_eq!(pic.stats().eois, 3);
}

#[test]
fn automatic_eoi_clears_isr_at_the_end_of_inta() {
    // Master in AEOI, slave not.
    let mut pic = at_pic(0, 0x03, 0x01);
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0x23);
    assert_eq!(pic.isr(), 0);
    pulse(&mut pic, 3);
    assert!(pic.intr(), "nothing in service holds it off");
    assert_eq!(pic.acknowledge(), 0x23);
    pulse(&mut pic, 10);
    assert_eq!(pic.acknowledge(), 0x2A);
    assert_eq!(
        pic.isr(),
        0x0400,
        "the master's IR2 auto-EOId, the slave's IR2 not"
    );

    // Rotate in AEOI mode: the level served becomes the lowest.
    let mut pic = at_pic(0, 0x03, 0x01);
    outb(&mut pic, 0x20, 0x80);
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0x23);
    // Priority is now 4 5 6 7 0 1 2 3.
    pulse(&mut pic, 1);
    pulse(&mut pic, 5);
    assert_eq!(pic.acknowledge(), 0x25);
    // 5 is now lowest: 6 7 0 1 ...
    assert_eq!(pic.acknowledge(), 0x21);
    // Clearing the rotate flag keeps the last rotation.
    outb(&mut pic, 0x20, 0x00);
    pulse(&mut pic, 0);
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0x23, "1 was lowest: 2 3 4 ... 0 1");
}

#[test]
fn rotation_commands_move_the_lowest_priority() {
    let mut pic = standard();
    pulse(&mut pic, 0);
    assert_eq!(pic.acknowledge(), 0x20);
    // Rotate on non-specific EOI: IR0 becomes lowest.
    outb(&mut pic, 0x20, 0xA0);
    assert_eq!(pic.isr(), 0);
    pulse(&mut pic, 0);
    pulse(&mut pic, 7);
    assert_eq!(pic.acknowledge(), 0x27, "IR7 now outranks IR0");
    // Rotate on specific EOI for 7: 7 lowest again, 0 highest.
    outb(&mut pic, 0x20, 0xE7);
    assert_eq!(pic.isr(), 0);
    pulse(&mut pic, 7);
    assert_eq!(pic.acknowledge(), 0x20);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.acknowledge(), 0x27);
    outb(&mut pic, 0x20, EOI);
    // Set priority: 4 lowest, so 5 highest.
    outb(&mut pic, 0x20, 0xC4);
    pulse(&mut pic, 3);
    pulse(&mut pic, 6);
    assert_eq!(pic.acknowledge(), 0x26);
    // 6 in service; 3 ranks below it now (5 6 7 0 1 2 3 4).
    assert!(!pic.intr());
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.acknowledge(), 0x23);
    // No-op command.
    outb(&mut pic, 0x20, 0x40);
    assert_eq!(pic.isr(), 0x08);
}

#[test]
fn ocw3_selects_irr_or_isr_for_even_port_reads() {
    let mut pic = standard();
    pulse(&mut pic, 3);
    pulse(&mut pic, 5);
    assert_eq!(inb(&mut pic, 0x20), 0x28, "IRR after initialization");
    assert_eq!(pic.acknowledge(), 0x23);
    assert_eq!(inb(&mut pic, 0x20), 0x20);
    outb(&mut pic, 0x20, 0x0B); // read ISR
    assert_eq!(inb(&mut pic, 0x20), 0x08);
    assert_eq!(inb(&mut pic, 0x20), 0x08, "the selection stays");
    // RR = 0 leaves the selection alone.
    outb(&mut pic, 0x20, 0x08);
    assert_eq!(inb(&mut pic, 0x20), 0x08);
    outb(&mut pic, 0x20, 0x0A); // read IRR
    assert_eq!(inb(&mut pic, 0x20), 0x20);
    outb(&mut pic, 0x21, 0x5A);
    assert_eq!(inb(&mut pic, 0x21), 0x5A, "the odd port reads IMR");
    assert_eq!(inb(&mut pic, 0xA1), 0x00);
}

#[test]
fn poll_command_acknowledges_on_the_next_read() {
    let mut pic = standard();
    pulse(&mut pic, 6);
    assert!(pic.intr());
    outb(&mut pic, 0x20, 0x0C); // OCW3 with P
    assert_eq!(inb(&mut pic, 0x20), 0x86, "I bit and level 6");
    assert_eq!(pic.isr(), 0x40);
    assert_eq!(pic.irr(), 0);
    assert!(!pic.intr(), "the poll took the place of INTA");
    // The next read is an ordinary one again.
    assert_eq!(inb(&mut pic, 0x20), 0x00);
    // Nothing to report: I = 0.
    outb(&mut pic, 0x20, 0x0C);
    assert_eq!(inb(&mut pic, 0x21), 0x00, "the poll applies to either port");
    outb(&mut pic, 0x20, EOI);
    // Polling the slave is local to the slave.
    pulse(&mut pic, 13);
    outb(&mut pic, 0xA0, 0x0C);
    assert_eq!(inb(&mut pic, 0xA0), 0x85);
    assert_eq!(pic.isr(), 0x2000);
    assert_eq!(pic.stats().polls, 3);
}

#[test]
fn masked_lines_are_requested_but_not_signalled() {
    let mut pic = standard();
    outb(&mut pic, 0x21, 0x08);
    pulse(&mut pic, 3);
    assert_eq!(pic.irr(), 0x0008);
    assert!(!pic.intr());
    outb(&mut pic, 0x21, 0x00);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x23);
    // Masking the slave's line, or the cascade input, holds it back.
    outb(&mut pic, 0x20, EOI);
    outb(&mut pic, 0x21, 0x04);
    pulse(&mut pic, 14);
    assert!(!pic.intr());
    outb(&mut pic, 0x21, 0x00);
    assert_eq!(pic.acknowledge(), 0x2E);
}

#[test]
fn special_mask_mode_lets_lower_levels_through() {
    let mut pic = standard();
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0x23);
    pulse(&mut pic, 5);
    assert!(!pic.intr());
    // Mask the level in service and enter special mask mode.
    outb(&mut pic, 0x21, 0x08);
    outb(&mut pic, 0x20, 0x68);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x25);
    // A non-specific EOI skips the masked in-service level 3.
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0x08);
    outb(&mut pic, 0x20, 0x48); // leave special mask mode
    outb(&mut pic, 0x21, 0x00);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0);
}

#[test]
fn special_fully_nested_mode_lets_a_slave_nest() {
    for (sfnm, nested) in [(false, false), (true, true)] {
        let master_icw4 = if sfnm { 0x11 } else { 0x01 };
        let mut pic = at_pic(0, master_icw4, 0x01);
        pulse(&mut pic, 12);
        assert_eq!(pic.acknowledge(), 0x2C);
        // A higher-priority request on the same slave.
        pulse(&mut pic, 9);
        assert_eq!(pic.intr(), nested, "sfnm {sfnm}");
        if nested {
            assert_eq!(pic.acknowledge(), 0x29);
            assert_eq!(pic.isr(), 0x1204);
        }
        // A lower level than the slave on the master waits either way.
        pulse(&mut pic, 5);
        assert!(!pic.intr(), "sfnm {sfnm}");
    }
}

#[test]
fn spurious_irq7_when_the_request_vanishes_before_inta() {
    let mut pic = standard();
    pic.set_irq(3, true);
    assert!(pic.intr());
    pic.set_irq(3, false);
    assert_eq!(pic.irr(), 0);
    assert!(pic.intr(), "INT stays up until the INTA sequence");
    assert_eq!(pic.acknowledge(), 0x27);
    assert_eq!(pic.isr(), 0, "no ISR bit for a spurious interrupt");
    assert!(!pic.intr());
    assert_eq!(pic.stats().spurious_master, 1);
    // Masking a request after INT went up has the same effect.
    pulse(&mut pic, 4);
    outb(&mut pic, 0x21, 0x10);
    assert_eq!(pic.acknowledge(), 0x27);
    assert_eq!(pic.isr(), 0);
}

#[test]
fn spurious_irq15_still_sets_the_master_isr_bit_2() {
    let mut pic = standard();
    pic.set_irq(11, true);
    assert!(pic.intr());
    pic.set_irq(11, false);
    assert_eq!(pic.acknowledge(), 0x2F);
    assert_eq!(
        pic.isr(),
        0x0004,
        "the master served its IR2; the slave had nothing"
    );
    assert_eq!(pic.stats().spurious_slave, 1);
    outb(&mut pic, 0x20, EOI);
    assert_eq!(pic.isr(), 0);
    assert!(!pic.intr());
}

#[test]
fn level_triggered_mode_follows_the_line() {
    let mut pic = at_pic(0x08, 0x01, 0x01);
    pic.set_irq(3, true);
    assert_eq!(pic.acknowledge(), 0x23);
    assert_eq!(pic.irr(), 0x0008, "IRR shows the line, still high");
    // EOI with the line still high: another interrupt.
    outb(&mut pic, 0x20, EOI);
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x23);
    pic.set_irq(3, false);
    outb(&mut pic, 0x20, EOI);
    assert!(!pic.intr());
    // Removed before INTA: the default IR7.
    pic.set_irq(5, true);
    pic.set_irq(5, false);
    assert_eq!(pic.acknowledge(), 0x27);
    // A line already high at ICW1 requests at once in level mode...
    pic.set_irq(6, true);
    for (port, v) in [(0x20, 0x19), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        outb(&mut pic, port, v);
    }
    assert!(pic.intr());
    assert_eq!(pic.acknowledge(), 0x26);
    // ... but needs a new edge in edge mode.
    for (port, v) in [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01)] {
        outb(&mut pic, port, v);
    }
    assert!(!pic.intr());
}

#[test]
fn mcs80_mode_when_icw4_is_left_out() {
    // ICW1 without IC4: uPM = 0, the second INTA byte is a CALL address.
    // Single chip, call address interval 4, A7-A5 = 111.
    let mut pic = Pic::new();
    for (port, v) in [(0x20, 0xF6), (0x21, 0x12), (0x21, 0x00)] {
        outb(&mut pic, port, v);
    }
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0xE0 | 3 << 2);
    // Interval 8: A7-A6 and the level in D5-D3.
    let mut pic = Pic::new();
    for (port, v) in [(0x20, 0xD2), (0x21, 0x12), (0x21, 0x00)] {
        outb(&mut pic, port, v);
    }
    pulse(&mut pic, 3);
    assert_eq!(pic.acknowledge(), 0xC0 | 3 << 3);
}

#[test]
fn a_slave_with_another_id_leaves_the_bus_floating() {
    let mut pic = Pic::new();
    for (port, v) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xA0, 0x11),
        (0xA1, 0x28),
        (0xA1, 0x05), // ID 5: never addressed
        (0xA1, 0x01),
        (0x21, 0x00),
        (0xA1, 0x00),
    ] {
        outb(&mut pic, port, v);
    }
    pulse(&mut pic, 10);
    assert_eq!(pic.acknowledge(), 0xFF);
    assert_eq!(pic.isr(), 0x0004);
    assert_eq!(pic.stats().unanswered, 1);
}

#[test]
fn through_the_machine_ports() {
    let mut m = Machine::new(MachineConfig::with_ram(4 << 20)).unwrap();
    for (port, v) in [
        (0x20, 0x11),
        (0xA0, 0x11),
        (0x21, 0x20),
        (0xA1, 0x28),
        (0x21, 0x04),
        (0xA1, 0x02),
        (0x21, 0x01),
        (0xA1, 0x01),
        (0x21, !0x10u8),
        (0xA1, 0xFF),
    ] {
        m.io_write(port, 1, v as u32);
    }
    assert_eq!(m.io_read(0x21, 1), 0xEF);
    assert_eq!(m.io_read(0xA1, 1), 0xFF);
    // A word write acts on the low byte.
    m.io_write(0xA1, 2, 0xAB7F);
    assert_eq!(m.io_read(0xA1, 1), 0x7F);
    assert_eq!(m.io_read(0xA1, 2), 0x7F);
    m.io_write(0xA1, 1, 0xFF);

    // COM1's received-data interrupt on IRQ4.
    m.io_write(0x3FC, 1, 0x08); // OUT2
    m.io_write(0x3F9, 1, 0x01); // IER: received data
    m.serial_input(b"a");
    assert!(m.interrupt_pending());
    m.io_write(0x20, 1, 0x0A);
    assert_eq!(m.io_read(0x20, 1), 0x10, "IRR shows IRQ4");
    assert_eq!(m.acknowledge_interrupt(), 0x24);
    m.io_write(0x20, 1, 0x0B);
    assert_eq!(m.io_read(0x20, 1), 0x10, "ISR shows IRQ4");
    assert_eq!(m.io_read(0x3F8, 1), b'a' as u32);
    m.io_write(0x20, 1, 0x20);
    assert_eq!(m.io_read(0x20, 1), 0x00);
    assert!(!m.interrupt_pending());

    // The guest reads the byte itself (say with IF = 0) before the CPU
    // takes the interrupt: the request is gone, INTA gets IR7.
    m.serial_input(b"b");
    assert!(m.interrupt_pending());
    assert_eq!(m.io_read(0x3F8, 1), b'b' as u32);
    assert!(m.interrupt_pending());
    assert_eq!(m.acknowledge_interrupt(), 0x27);
    assert_eq!(m.io_read(0x20, 1), 0x00, "nothing in service");
    assert!(!m.interrupt_pending());
}
