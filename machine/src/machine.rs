//! The PC: RAM, the bus with its chipset, the clock and the trace.
//!
//! Engines own the CPU; everything else lives here and is shared by every
//! engine, so a run can move from one engine to another mid-way.

use crate::board::{Board, ChipKind, IrqLines};
use crate::bus::{Bus, Device, DeviceId, IoCtx, Request};
use crate::devices::{
    ata::AtaChannel, debugcon::DebugCon, exit::BochsShutdown, exit::DebugExit, i8042::I8042,
    ioapic::Ioapic, lapic::Lapic, lapic::Lint, pic::Pic, pit::Pit, port92::Port92, post::PostCodes,
    rtc::Rtc, uart::Uart16550, vga::Screen, vga::Vga,
};
use crate::event::Event;
use crate::memory::{GuestMemory, MemoryError};
use crate::{Clock, ClockMode, Trace};

/// Status reads in a row, finding the 8042's output buffer empty and with
/// nothing written between them, that show a guest polling for a key.
const KEY_WAIT_POLLS: u32 = 16;

/// Default guest RAM: 32 MiB.
pub const DEFAULT_RAM: usize = 32 << 20;

/// How the guest asked the machine to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MachineStop {
    /// isa-debug-exit (port 0xF4) with the value written.
    Exit(u32),
    /// Bochs' shutdown port (0x8900) received "Shutdown".
    Shutdown,
    /// Fast reset through port 0x92 bit 0.
    Reset,
    /// A POST code was written to port 0x80 while stops on POST codes are
    /// on (`set_stop_on_post`): `ringlab bench` times the phases between.
    PostCode(u8),
    /// COM1's paced input ended and the guest printed its prompt again
    /// (`set_serial_prompt`).
    InputDone,
}

impl MachineStop {
    pub fn to_stop(self) -> crate::Stop {
        match self {
            MachineStop::Exit(value) => crate::Stop::GuestExit { value },
            MachineStop::Shutdown => crate::Stop::Shutdown,
            MachineStop::Reset => crate::Stop::Reset,
            MachineStop::PostCode(code) => crate::Stop::PostCode { code },
            MachineStop::InputDone => crate::Stop::InputDone,
        }
    }
}

#[derive(Clone, Debug)]
pub struct MachineConfig {
    pub ram_bytes: usize,
    /// Leave every port unclaimed (the devices exist but are not mapped), so
    /// IN reads all ones: what CPU conformance data captured on a bare
    /// processor board expects.
    pub bare_bus: bool,
    /// The instant the RTC shows at virtual time 0 (Unix seconds); fixed by
    /// default so runs are deterministic.
    pub rtc_start: i64,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            ram_bytes: DEFAULT_RAM,
            bare_bus: false,
            rtc_start: crate::devices::rtc::DEFAULT_START,
        }
    }
}

impl MachineConfig {
    /// The standard PC with `ram_bytes` of RAM.
    pub fn with_ram(ram_bytes: usize) -> Self {
        MachineConfig {
            ram_bytes,
            ..Default::default()
        }
    }
}

/// Typed handles to the standard chipset.
#[derive(Clone, Copy, Debug)]
pub struct Chipset {
    pub pic: DeviceId<Pic>,
    pub pit: DeviceId<Pit>,
    pub rtc: DeviceId<Rtc>,
    /// The primary and secondary ATA channels.
    pub ata: [DeviceId<AtaChannel>; 2],
    pub kbc: DeviceId<I8042>,
    pub lapic: DeviceId<Lapic>,
    pub ioapic: DeviceId<Ioapic>,
    pub com1: DeviceId<Uart16550>,
    pub vga: DeviceId<Vga>,
    pub debugcon: DeviceId<DebugCon>,
    pub post: DeviceId<PostCodes>,
    pub port92: DeviceId<Port92>,
    pub debug_exit: DeviceId<DebugExit>,
    pub bochs: DeviceId<BochsShutdown>,
}

pub use crate::board::{irqs, ports};

pub struct Machine {
    pub mem: GuestMemory,
    pub bus: Bus,
    pub clock: Clock,
    pub trace: Trace,
    pub chipset: Chipset,
    board: Board,
    irq_lines: IrqLines,
    icount: u64,
    a20_mask: u32,
    mapping_generation: u64,
    /// A debugger's data watchpoints (`crate::watch`).
    watchpoints: Vec<crate::Watchpoint>,
    stop: Option<MachineStop>,
    /// The CPU's INTR input (the local APIC's, or the 8259A's through
    /// LINT0), cached after every change to the interrupt controllers.
    intr: bool,
    /// An NMI is waiting for the CPU (latched: NMI is edge-triggered).
    nmi: bool,
    /// `nmi` and not masked at port 0x70, cached for the engines' loops.
    nmi_ready: bool,
    /// Host keys held until the guest is ready for them (`key_events`).
    host_keys: std::collections::VecDeque<(crate::devices::ps2kbd::Key, bool)>,
    keys_flowing: bool,
    /// Earliest device deadline (u64::MAX when none), cached.
    deadline: u64,
    irq_buf: Vec<(u8, bool)>,
    req_buf: Vec<Request>,
    /// The firmware ROM's high alias, when one is loaded.
    rom: Option<DeviceId<crate::devices::rom::Rom>>,
    /// Writes to the ROM's low alias (ignored).
    rom_low_writes: u64,
}

/// Where a loaded ROM lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RomMap {
    pub size: usize,
    /// The low alias: 0x100000 - size.
    pub low: u32,
    /// The high alias: 4 GiB - size.
    pub high: u64,
    /// The image's page-aligned host copy (for KVM's read-only slot).
    pub host: *mut u8,
}

/// Adds the board's chips to the bus, each mapped where the board says.
struct Builder<'a> {
    bus: &'a mut Bus,
    /// False for a bare bus: the chips exist but answer nowhere.
    map: bool,
}

impl Builder<'_> {
    fn place<T: Device>(&mut self, board: &Board, kind: ChipKind, unit: u8, dev: T) -> DeviceId<T> {
        let chip = board
            .chip(kind, unit)
            .unwrap_or_else(|| panic!("the board has no {kind:?} {unit}"));
        let id = self.bus.add(dev);
        if self.map {
            for &(start, len) in &chip.ports {
                self.bus
                    .map_pio(id, start, len)
                    .expect("the board's port ranges are disjoint");
            }
            for &(start, len) in &chip.mmio {
                self.bus
                    .map_mmio(id, start, len)
                    .expect("the board's MMIO ranges are disjoint");
            }
        }
        id
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("mem", &self.mem)
            .field("icount", &self.icount)
            .finish()
    }
}

impl Machine {
    /// A PC with `cfg.ram_bytes` of RAM and the chips of [`Board::pc`],
    /// mapped and wired as it says.
    pub fn new(cfg: MachineConfig) -> Result<Machine, MemoryError> {
        let mem = GuestMemory::new(cfg.ram_bytes)?;
        let board = Board::pc();
        let mut bus = Bus::new();
        let irq_lines = board
            .irq_lines()
            .expect("the PC board gives each IRQ line one chip");
        let mut b = Builder {
            bus: &mut bus,
            map: !cfg.bare_bus,
        };
        let pic = b.place(&board, ChipKind::Pic, 0, Pic::new());
        let pit = b.place(&board, ChipKind::Pit, 0, Pit::new());
        let mut rtc_chip = Rtc::new(cfg.rtc_start);
        rtc_chip.set_memory_sizes(cfg.ram_bytes as u64);
        let rtc = b.place(&board, ChipKind::Rtc, 0, rtc_chip);
        let kbc = b.place(&board, ChipKind::Keyboard, 0, I8042::new());
        let ata = [
            b.place(&board, ChipKind::Ata, 0, AtaChannel::new(irqs::ATA_PRIMARY)),
            b.place(
                &board,
                ChipKind::Ata,
                1,
                AtaChannel::new(irqs::ATA_SECONDARY),
            ),
        ];
        let ioapic = b.place(
            &board,
            ChipKind::IoApic,
            0,
            Ioapic::with_id(crate::board::IOAPIC_ID),
        );
        let lapic = b.place(&board, ChipKind::LocalApic, 0, Lapic::new());
        let com1 = b.place(&board, ChipKind::Uart, 0, Uart16550::new(irqs::COM1));
        let vga = b.place(&board, ChipKind::Vga, 0, Vga::new());
        let debugcon = b.place(&board, ChipKind::DebugCon, 0, DebugCon::default());
        let post = b.place(&board, ChipKind::PostCodes, 0, PostCodes::default());
        let port92 = b.place(&board, ChipKind::Port92, 0, Port92::default());
        let debug_exit = b.place(&board, ChipKind::DebugExit, 0, DebugExit);
        let bochs = b.place(&board, ChipKind::BochsShutdown, 0, BochsShutdown::default());
        let mut m = Machine {
            mem,
            bus,
            clock: Clock::new(),
            trace: Trace::default(),
            chipset: Chipset {
                pic,
                pit,
                rtc,
                ata,
                kbc,
                lapic,
                ioapic,
                com1,
                vga,
                debugcon,
                post,
                port92,
                debug_exit,
                bochs,
            },
            board,
            irq_lines,
            icount: 0,
            a20_mask: u32::MAX,
            mapping_generation: 0,
            watchpoints: Vec::new(),
            stop: None,
            intr: false,
            nmi: false,
            nmi_ready: false,
            host_keys: std::collections::VecDeque::new(),
            keys_flowing: false,
            deadline: u64::MAX,
            irq_buf: Vec::new(),
            req_buf: Vec::new(),
            rom: None,
            rom_low_writes: 0,
        };
        m.after_device_activity();
        Ok(m)
    }

    /// The board this machine was built from.
    pub fn board(&self) -> &Board {
        &self.board
    }

    /// Which chip owns each ISA interrupt line.
    pub fn irq_lines(&self) -> &IrqLines {
        &self.irq_lines
    }

    // ---- time -----------------------------------------------------------

    /// Instructions retired since power-on, machine-wide.
    #[inline]
    pub fn icount(&self) -> u64 {
        self.icount
    }

    /// Retires `n` instructions: advances the count and, when the clock runs
    /// on instructions, virtual time; ticks devices whose deadline passed.
    #[inline]
    pub fn retire(&mut self, n: u64) {
        self.icount += n;
        if self.clock.mode() == ClockMode::Instructions {
            let now = self.clock.now() + n * self.clock.ns_per_insn();
            self.clock.set(now);
        }
        if self.clock.now() >= self.deadline {
            self.tick_devices();
        }
    }

    /// Sets virtual time (the KVM engine, from host time).
    pub fn set_time(&mut self, ns: u64) {
        self.clock.set(ns);
        if self.clock.now() >= self.deadline {
            self.tick_devices();
        }
    }

    /// The earliest device deadline, if any device has one.
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        (self.deadline != u64::MAX).then_some(self.deadline)
    }

    /// How many instructions may run before the next device deadline (the
    /// translator and interpreter bound their blocks by this).
    #[inline]
    pub fn insns_until_deadline(&self) -> u64 {
        if self.deadline == u64::MAX {
            u64::MAX
        } else {
            self.clock.insns_until(self.deadline)
        }
    }

    /// A halted CPU skips to the next deadline. False if there is none.
    pub fn warp_to_deadline(&mut self) -> bool {
        match self.next_deadline() {
            Some(t) => {
                self.clock.warp_to(t);
                self.tick_devices();
                true
            }
            None => false,
        }
    }

    fn tick_devices(&mut self) {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        self.bus.tick_due(&mut cx);
        self.after_device_activity();
    }

    /// Routes IRQ line changes to the PIC and the I/O APIC, messages
    /// between the APICs, carries out device requests, and refreshes the
    /// cached INTR line and deadline.
    fn after_device_activity(&mut self) {
        let cs = self.chipset;
        self.route_irqs();
        if !self.host_keys.is_empty() {
            self.release_keys();
            self.route_irqs();
        }
        self.route_apic_messages();
        for i in 0..self.req_buf.len() {
            match self.req_buf[i] {
                Request::Stop(s) => {
                    self.stop.get_or_insert(s);
                }
                Request::A20(on) => self.set_a20(on),
            }
        }
        self.req_buf.clear();
        let lapic = self.bus.get(cs.lapic);
        self.intr = lapic.pending_vector().is_some()
            || lapic.extint_pending()
            || (lapic.lint0_extint() && self.bus.get(cs.pic).intr());
        self.nmi_ready = self.nmi && !self.bus.get(cs.rtc).nmi_masked();
        self.deadline = self.bus.next_deadline().unwrap_or(u64::MAX);
    }

    /// Each ISA line change goes to the 8259A pair and to the I/O APIC (the
    /// board's wiring).
    fn route_irqs(&mut self) {
        if self.irq_buf.is_empty() {
            return;
        }
        let cs = self.chipset;
        let changes = std::mem::take(&mut self.irq_buf);
        let pic = self.bus.get_mut(cs.pic);
        for &(line, level) in &changes {
            pic.set_irq(line, level);
        }
        let ioapic = self.bus.get_mut(cs.ioapic);
        for &(line, level) in &changes {
            ioapic.set_irq(crate::board::ioapic_pin(line), level);
        }
        self.irq_buf = changes;
        self.irq_buf.clear();
    }

    /// Delivers the I/O APIC's messages to the local APIC and the local
    /// APIC's EOIs of level-triggered vectors back (which may send the
    /// message again while the line is still asserted: bounded rounds, so a
    /// storm cannot hang the machine); then its NMI and INIT outputs.
    fn route_apic_messages(&mut self) {
        let cs = self.chipset;
        if !self.bus.get(cs.ioapic).has_messages() && !self.bus.get(cs.lapic).has_outputs() {
            return;
        }
        for _ in 0..8 {
            let msgs = self.bus.get_mut(cs.ioapic).take_messages();
            let lapic = self.bus.get_mut(cs.lapic);
            for m in msgs {
                lapic.accept(m);
            }
            let eois = lapic.take_eoi_broadcasts();
            if eois.is_empty() {
                break;
            }
            let ioapic = self.bus.get_mut(cs.ioapic);
            for v in eois {
                ioapic.eoi(v);
            }
        }
        let lapic = self.bus.get_mut(cs.lapic);
        if lapic.take_nmi() {
            self.nmi = true;
        }
        if lapic.take_init() {
            // INIT to itself: the CPU resets (there is no other CPU to
            // send it to).
            self.stop.get_or_insert(MachineStop::Reset);
        }
    }

    /// The A20 gate, one for the whole board whichever chip moved it (port
    /// 0x92 or the 8042's output port); both show its state.
    fn set_a20(&mut self, on: bool) {
        let mask = if on { u32::MAX } else { !(1 << 20) };
        if mask != self.a20_mask {
            self.a20_mask = mask;
            self.mapping_generation += 1;
        }
        let cs = self.chipset;
        self.bus.get_mut(cs.kbc).set_a20_line(on);
        self.bus.get_mut(cs.port92).set_a20_line(on);
    }

    // ---- interrupts -----------------------------------------------------

    /// The CPU's INTR input: an interrupt is waiting for IF.
    #[inline]
    pub fn interrupt_pending(&self) -> bool {
        self.intr
    }

    /// The CPU's interrupt-acknowledge cycle: the vector of the
    /// highest-priority interrupt. The local APIC answers first (its fixed
    /// interrupts), then the 8259A through LINT0's ExtINT, as QEMU orders
    /// them; a request that went away answers with the spurious vector.
    pub fn acknowledge_interrupt(&mut self) -> u8 {
        let cs = self.chipset;
        let lapic = self.bus.get_mut(cs.lapic);
        let v = if lapic.pending_vector().is_some() {
            lapic.acknowledge()
        } else if lapic.extint_pending() || lapic.lint0_extint() {
            lapic.acknowledge_extint();
            self.bus.get_mut(cs.pic).acknowledge()
        } else {
            lapic.acknowledge()
        };
        self.after_device_activity();
        v
    }

    /// An NMI is waiting and the NMI mask (port 0x70 bit 7) lets it through.
    #[inline]
    pub fn nmi_pending(&self) -> bool {
        self.nmi_ready
    }

    /// The CPU takes the waiting NMI (vector 2): true if there was one.
    #[inline]
    pub fn take_nmi(&mut self) -> bool {
        let pending = self.nmi_ready;
        if pending {
            self.nmi = false;
            self.nmi_ready = false;
        }
        pending
    }

    /// An edge on the board's NMI line (an I/O channel check; the host's
    /// "nmi" command): it reaches the CPU through LINT1.
    pub fn raise_nmi(&mut self) {
        let lapic = self.bus.get_mut(self.chipset.lapic);
        lapic.set_lint(Lint::Lint1, true);
        lapic.set_lint(Lint::Lint1, false);
        self.after_device_activity();
    }

    /// What the PC platform's chips did, one line each for those the guest
    /// used, for `--stats`: (chip, summary).
    pub fn device_summary(&self) -> Vec<(String, String)> {
        let cs = self.chipset;
        let mut out = Vec::new();
        for (i, ch) in cs.ata.iter().enumerate() {
            let a = self.bus.get(*ch).stats();
            let cmds: u64 = a.commands.values().sum();
            if cmds == 0 {
                continue;
            }
            let kinds: Vec<String> = a.commands.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push((
                format!("ATA channel {i}"),
                format!(
                    "{cmds} commands ({}); {} sectors read, {} written; {} interrupts; \
                     {} bulk transfers; {} errors",
                    kinds.join(", "),
                    a.sectors_read,
                    a.sectors_written,
                    a.interrupts,
                    a.bulk_reads + a.bulk_writes,
                    a.errors
                ),
            ));
        }
        let k = self.bus.get(cs.kbc).stats();
        if k.bytes_delivered + k.status_reads + k.keyboard_writes > 0 {
            out.push((
                "keyboard (8042)".into(),
                format!(
                    "{} keys and {} bytes delivered; {} status reads; {} A20 changes; \
                     {} resets",
                    k.keys_delivered, k.bytes_delivered, k.status_reads, k.a20_changes, k.resets
                ),
            ));
        }
        let r = self.bus.get(cs.rtc).stats();
        if r.index_writes > 0 {
            out.push((
                "RTC".into(),
                format!(
                    "{} time, {} control, {} NVRAM reads; interrupts: {} periodic, {} alarm, \
                     {} update",
                    r.time_reads,
                    r.control_reads,
                    r.nvram_reads,
                    r.periodic_irqs,
                    r.alarm_irqs,
                    r.update_irqs
                ),
            ));
        }
        let l = self.bus.get(cs.lapic).stats();
        let used: Vec<String> = l
            .registers
            .iter()
            .filter(|&(_, rd, wr)| rd + wr > 0)
            .map(|(reg, rd, wr)| {
                use crate::devices::lapic::Register;
                format!("{} {rd}r/{wr}w", reg.name())
            })
            .collect();
        if !used.is_empty() {
            let d = &l.delivered;
            out.push((
                "local APIC".into(),
                format!(
                    "accesses: {}; delivered: {} timer, {} I/O APIC, {} IPI, {} ExtINT; \
                     {} EOIs, {} spurious",
                    used.join(", "),
                    d.timer,
                    d.io_apic,
                    d.self_ipi,
                    d.extint,
                    l.eois,
                    l.spurious
                ),
            ));
        }
        let io = self.bus.get(cs.ioapic).stats();
        let sent: Vec<String> = io
            .messages
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(pin, n)| format!("pin {pin} {n}"))
            .collect();
        let accesses: u64 = io.registers.iter().map(|(_, rd, wr)| rd + wr).sum();
        if accesses > 0 {
            out.push((
                "I/O APIC".into(),
                format!(
                    "{accesses} register accesses; messages: {}; {} EOIs",
                    if sent.is_empty() {
                        "none".to_string()
                    } else {
                        sent.join(", ")
                    },
                    io.eois
                ),
            ));
        }
        out
    }

    /// Every platform chip's counters, for `--json`.
    pub fn device_stats_json(&self) -> serde_json::Value {
        let cs = self.chipset;
        serde_json::json!({
            "ata": [self.bus.get(cs.ata[0]).stats(), self.bus.get(cs.ata[1]).stats()],
            "keyboard": self.bus.get(cs.kbc).stats(),
            "rtc": self.bus.get(cs.rtc).stats(),
            "local_apic": self.bus.get(cs.lapic).stats(),
            "io_apic": self.bus.get(cs.ioapic).stats(),
            "uart": self.bus.get(cs.com1).stats(),
        })
    }

    /// Records a device's note in the trace (see `Event::DeviceNote`).
    pub fn note(&mut self, device: &'static str, note: impl Into<std::borrow::Cow<'static, str>>) {
        self.trace.record(
            self.icount,
            self.clock.now(),
            Event::DeviceNote {
                device,
                note: note.into(),
            },
        );
    }

    /// IA32_APIC_BASE (MSR 0x1B), as RDMSR reads it.
    pub fn apic_base(&self) -> u64 {
        self.bus.get(self.chipset.lapic).apic_base()
    }

    /// The local APIC's register page as reads would see it now
    /// (`Lapic::render`: 4096 bytes, zero where no register is), for a
    /// hypervisor's read-only shadow.
    pub fn render_lapic_page(&self, page: &mut [u8]) {
        self.bus
            .get(self.chipset.lapic)
            .render(self.clock.now(), page);
    }

    /// WRMSR to IA32_APIC_BASE. An error means #GP (reserved bits) or a
    /// relocation ringlab does not do; its text says which.
    pub fn set_apic_base(
        &mut self,
        value: u64,
    ) -> Result<(), crate::devices::lapic::ApicBaseError> {
        let r = self.bus.get_mut(self.chipset.lapic).set_apic_base(value);
        self.after_device_activity();
        r
    }

    // ---- port I/O -------------------------------------------------------

    pub fn io_read(&mut self, port: u16, size: u8) -> u32 {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        let v = self.bus.pio_read(port, size, &mut cx);
        self.after_device_activity();
        self.trace.record(
            self.icount,
            self.clock.now(),
            Event::PortIo {
                port,
                size,
                write: false,
                value: v,
            },
        );
        v
    }

    pub fn io_write(&mut self, port: u16, size: u8, value: u32) {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        self.bus.pio_write(port, size, value, &mut cx);
        self.after_device_activity();
        self.trace.record(
            self.icount,
            self.clock.now(),
            Event::PortIo {
                port,
                size,
                write: true,
                value,
            },
        );
    }

    /// String input (REP INS) of whole `size`-byte items from `port` into
    /// `out`, through the device's bulk path: returns the bytes filled, 0
    /// when the port has no bulk path (read item by item with `io_read`).
    /// Each item is traced as the `io_read` it stands for.
    pub fn io_read_bulk(&mut self, port: u16, size: u8, out: &mut [u8]) -> usize {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        let n = self.bus.pio_read_bulk(port, size, out, &mut cx);
        if n == 0 {
            return 0;
        }
        self.after_device_activity();
        self.trace_items(port, size, false, &out[..n]);
        n
    }

    /// String output (REP OUTS) through the device's bulk path: the bytes
    /// consumed, 0 when the port has none.
    pub fn io_write_bulk(&mut self, port: u16, size: u8, data: &[u8]) -> usize {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        let n = self.bus.pio_write_bulk(port, size, data, &mut cx);
        if n == 0 {
            return 0;
        }
        self.after_device_activity();
        self.trace_items(port, size, true, &data[..n]);
        n
    }

    /// Traces each `size`-byte item of a bulk transfer as the single port
    /// access it stands for.
    fn trace_items(&mut self, port: u16, size: u8, write: bool, bytes: &[u8]) {
        for item in bytes.chunks_exact(size as usize) {
            let mut b = [0u8; 4];
            b[..item.len()].copy_from_slice(item);
            self.trace.record(
                self.icount,
                self.clock.now(),
                Event::PortIo {
                    port,
                    size,
                    write,
                    value: u32::from_le_bytes(b),
                },
            );
        }
    }

    // ---- physical memory ------------------------------------------------

    /// The mask applied to every physical address: bit 20 cleared while the
    /// A20 gate is off (real address wraparound at 1 MiB, as on the 8086).
    #[inline]
    pub fn a20_mask(&self) -> u32 {
        self.a20_mask
    }

    /// Changes whenever the physical address map changes (A20 toggled)
    /// or the watchpoints do; engines flush their TLBs when it does.
    #[inline]
    pub fn mapping_generation(&self) -> u64 {
        self.mapping_generation
    }

    /// The data watchpoints the engines stop on (`crate::watch`).
    #[inline]
    pub fn watchpoints(&self) -> &[crate::Watchpoint] {
        &self.watchpoints
    }

    /// Replaces the data watchpoints. The mapping generation moves, so
    /// every engine drops the TLB entries that would let an access to a
    /// newly watched page go unchecked.
    pub fn set_watchpoints(&mut self, w: Vec<crate::Watchpoint>) {
        if w != self.watchpoints {
            self.watchpoints = w;
            self.mapping_generation += 1;
        }
    }

    /// Reads `size` (1, 2, 4 or 8) bytes of physical memory: RAM, else a
    /// device's MMIO, else all ones. The A20 mask is applied.
    pub fn read_phys(&mut self, addr: u32, size: u8) -> u64 {
        let a = (addr & self.a20_mask) as u64;
        // Fixed sizes, not a copy of `size` bytes: a page walk reads its
        // entries here, and a copy of a length known only at run time is
        // a call to memcpy (3% of a translated xv6's time).
        let ram = match size {
            1 => self.mem.read_u8(a).map(u64::from),
            2 => self.mem.read_u16(a).map(u64::from),
            4 => self.mem.read_u32(a).map(u64::from),
            8 => self.mem.read_u64(a),
            _ => {
                let mut buf = [0u8; 8];
                self.mem
                    .read(a, &mut buf[..size as usize])
                    .ok()
                    .map(|()| u64::from_le_bytes(buf))
            }
        };
        if let Some(v) = ram {
            return v;
        }
        if self.bus.mmio_claimed(a) {
            let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
                .with_memory(&mut self.mem);
            let v = self.bus.mmio_read(a, size, &mut cx);
            self.after_device_activity();
            return v;
        }
        // Straddling the end of RAM, or nothing there: byte by byte.
        let mut v = 0u64;
        for i in 0..size as u32 {
            // Physical addresses do not wrap at 4 GiB (the P6 bus is
            // 36 bits wide): bytes past it hit nothing.
            let b = (addr as u64 + i as u64) & (self.a20_mask as u64 | !0xFFFF_FFFFu64);
            let byte = self.mem.read_u8(b).unwrap_or_else(|| {
                let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
                    .with_memory(&mut self.mem);
                self.bus.mmio_read(b, 1, &mut cx) as u8
            });
            v |= (byte as u64) << (8 * i);
        }
        self.after_device_activity();
        v
    }

    /// Reads a device register at `addr` if reading it is pure (see
    /// [`Device::mmio_read_is_pure`](crate::Device::mmio_read_is_pure)):
    /// the translator's way to read one from translated code. None: not
    /// such a register (RAM, nothing, a read with effects).
    pub fn read_pure_mmio(&mut self, addr: u32, size: u8) -> Option<u64> {
        let a = (addr & self.a20_mask) as u64;
        if a >> 12 != (a + size as u64 - 1) >> 12 {
            return None;
        }
        // Pure: no line, request or deadline changes for
        // `after_device_activity` to carry out.
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
        let v = self.bus.read_pure(a, size, &mut cx);
        debug_assert!(self.irq_buf.is_empty() && self.req_buf.is_empty());
        v
    }

    /// The stable device register (`Device::mmio_read_is_stable`) a
    /// `size`-byte read at physical `addr` reads, if it is one.
    pub fn stable_mmio(&self, addr: u32, size: u8) -> Option<crate::bus::StableRegister> {
        self.bus
            .stable_register((addr & self.a20_mask) as u64, size)
    }

    /// Writes `size` bytes of physical memory (RAM, else MMIO, else dropped).
    pub fn write_phys(&mut self, addr: u32, size: u8, value: u64) {
        let a = (addr & self.a20_mask) as u64;
        let bytes = value.to_le_bytes();
        match self.mem.write(a, &bytes[..size as usize]) {
            Ok(()) => return,
            Err(crate::memory::MemoryError::ReadOnly { .. }) => {
                // The ROM's low alias: a PC's ROM ignores writes.
                self.rom_low_writes += 1;
                return;
            }
            Err(_) => {}
        }
        if self.bus.mmio_claimed(a) {
            let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
                .with_memory(&mut self.mem);
            self.bus.mmio_write(a, size, value, &mut cx);
            self.after_device_activity();
            return;
        }
        for i in 0..size as u32 {
            // Physical addresses do not wrap at 4 GiB (the P6 bus is
            // 36 bits wide): bytes past it hit nothing.
            let b = (addr as u64 + i as u64) & (self.a20_mask as u64 | !0xFFFF_FFFFu64);
            match self.mem.write_u8(b, bytes[i as usize]) {
                Ok(()) => {}
                Err(crate::memory::MemoryError::ReadOnly { .. }) => self.rom_low_writes += 1,
                Err(_) => {
                    let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
                        .with_memory(&mut self.mem);
                    self.bus.mmio_write(b, 1, bytes[i as usize] as u64, &mut cx);
                }
            }
        }
        self.after_device_activity();
    }

    // ---- guest requests -------------------------------------------------

    /// The guest asked to stop (exit port, shutdown, reset).
    #[inline]
    pub fn stop_requested(&self) -> Option<MachineStop> {
        self.stop
    }

    /// Clears a stop request (for a frontend that continues anyway).
    pub fn clear_stop(&mut self) {
        self.stop = None;
    }

    // ---- host side of the devices ---------------------------------------

    /// Everything the guest sent to COM1 so far.
    pub fn serial_output(&self) -> &[u8] {
        self.bus.get(self.chipset.com1).output()
    }

    /// Which interrupt source each vector belongs to, as the guest has
    /// programmed the interrupt controllers now: the 8259A pair's bases
    /// (once initialised), the I/O APIC's unmasked pins and the local
    /// APIC's timer. Each ISA line is named by the chip the board wires to
    /// it. For `--stats`: "vector 0x20 (local APIC timer)".
    pub fn vector_sources(&self) -> Vec<(u8, String)> {
        let board = crate::board::Board::pc();
        let chip = |line: u8| {
            board
                .chips
                .iter()
                .find(|c| c.irqs.contains(&line))
                .map_or(String::new(), |c| format!(" {}", c.name))
        };
        let mut v: Vec<(u8, String)> = vec![];
        let pic = self.bus.get(self.chipset.pic);
        for (chip_no, first) in [(0usize, 0u8), (1, 8)] {
            let base = pic.vector_base(chip_no);
            if base != 0 {
                for i in 0..8 {
                    let line = first + i;
                    v.push((base + i, format!("IRQ {line}{} via the 8259A", chip(line))));
                }
            }
        }
        let ioapic = self.bus.get(self.chipset.ioapic);
        for pin in 0..crate::devices::ioapic::PINS as u8 {
            if let Some(vector) = ioapic.pin_vector(pin) {
                let what = match crate::board::Board::isa_line_at_pin(pin) {
                    Some(line) => format!("IRQ {line}{} via I/O APIC pin {pin}", chip(line)),
                    None => format!("I/O APIC pin {pin}"),
                };
                v.push((vector, what));
            }
        }
        if let Some(t) = self.bus.get(self.chipset.lapic).timer_vector() {
            v.push((t, "local APIC timer".to_string()));
        }
        // The APICs' programming wins over the 8259A's for a vector both use.
        v.reverse();
        let mut seen = std::collections::HashSet::new();
        v.retain(|(vec, _)| seen.insert(*vec));
        v.sort_by_key(|(vec, _)| *vec);
        v
    }

    /// Takes the COM1 output produced since the last call.
    pub fn take_serial_output(&mut self) -> Vec<u8> {
        self.bus.get_mut(self.chipset.com1).take_output()
    }

    /// Queues bytes for the guest to receive on COM1.
    pub fn serial_input(&mut self, data: &[u8]) {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        self.bus
            .get_mut(self.chipset.com1)
            .push_input(data, &mut cx);
        self.after_device_activity();
    }

    /// Connects COM1's host end to `source` (stdin, a file): see
    /// [`SerialInput`](crate::devices::uart::SerialInput).
    pub fn attach_serial_input(&mut self, source: Box<dyn crate::devices::uart::SerialInput>) {
        self.bus.get_mut(self.chipset.com1).attach_input(source);
    }

    /// Types COM1's input at the guest's prompt: held until the guest
    /// transmits `prompt`, then one line at a time; once the input has
    /// ended and the prompt comes again, the run stops with
    /// [`Stop::InputDone`](crate::Stop::InputDone). None: bytes go as the
    /// receiver has room.
    pub fn set_serial_prompt(&mut self, prompt: Option<&[u8]>) {
        self.bus
            .get_mut(self.chipset.com1)
            .set_prompt_pacing(prompt);
    }

    /// Takes in what a non-blocking serial source received meanwhile.
    pub fn poll_serial_input(&mut self) {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
            .with_memory(&mut self.mem);
        self.bus.get_mut(self.chipset.com1).poll_input(&mut cx);
        self.after_device_activity();
    }

    /// True once the serial source ended and the guest's receiver took in
    /// all it sent.
    pub fn serial_input_ended(&self) -> bool {
        self.bus.get(self.chipset.com1).input_ended()
    }

    /// Attaches `disk` as ATA drive `index`: 0 primary master, 1 primary
    /// slave, 2 secondary master, 3 secondary slave (QEMU's -hda..-hdd).
    /// The CMOS records the first two drives' types, as a PC's setup does.
    /// Returns the disk that was there.
    pub fn attach_disk(
        &mut self,
        index: usize,
        disk: crate::disk::DiskImage,
    ) -> Option<crate::disk::DiskImage> {
        assert!(index < 4, "ATA drives are 0-3");
        let old = self
            .bus
            .get_mut(self.chipset.ata[index / 2])
            .attach(index % 2, disk);
        let geometry = |slot: usize| {
            self.bus.get(self.chipset.ata[0]).disk(slot).map(|d| {
                let (cylinders, heads, sectors) = AtaChannel::default_geometry(d.sectors());
                crate::devices::rtc::DiskGeometry {
                    cylinders,
                    heads,
                    sectors,
                }
            })
        };
        let disks = [geometry(0), geometry(1)];
        self.bus.get_mut(self.chipset.rtc).set_hard_disks(disks);
        old
    }

    /// ATA drive `index`'s disk, if one is attached.
    pub fn disk(&self, index: usize) -> Option<&crate::disk::DiskImage> {
        self.bus
            .get(*self.chipset.ata.get(index / 2)?)
            .disk(index % 2)
    }

    /// Pushes what the guest wrote to every disk down to its file (writes
    /// already reach the file as they happen; this also syncs them).
    /// Every disk is tried; the first error is returned.
    pub fn flush_disks(&mut self) -> Result<(), crate::disk::DiskIoError> {
        let mut result = Ok(());
        for ch in self.chipset.ata {
            let r = self.bus.get_mut(ch).flush();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Disk writes and flushes the host failed (a full file system, an
    /// I/O error): the first failure of each disk, one line naming the
    /// image, the sector and the OS's error, each returned once. The guest
    /// saw an ATA error; the frontend tells the user.
    pub fn take_disk_failures(&mut self) -> Vec<String> {
        let mut all = Vec::new();
        for ch in self.chipset.ata {
            all.extend(self.bus.get_mut(ch).take_disk_failures());
        }
        all
    }

    /// Host keys: presses and releases typed on the PS/2 keyboard, queued
    /// without loss and delivered one byte at a time as the guest reads
    /// them.
    ///
    /// Keys start to flow once the guest is ready for them: it polls the
    /// 8042's status register for a key (`KEY_WAIT_POLLS` reads in a row
    /// finding nothing, with no command written between them: a set-up
    /// sequence writes between its reads), or IRQ 1 can reach the CPU
    /// (unmasked by the guest's own mask at an initialised 8259A with LINT0
    /// in ExtINT, or at the I/O APIC). Earlier, a waiting byte would hold IRQ 1 high through the
    /// guest's own interrupt set-up, and an edge-triggered controller would
    /// never see it (xv6 waits forever). The point depends only on the
    /// guest, so scripted keys give the same run every time.
    pub fn key_events(
        &mut self,
        keys: impl IntoIterator<Item = (crate::devices::ps2kbd::Key, bool)>,
    ) {
        self.host_keys.extend(keys);
        self.after_device_activity();
    }

    /// Host key events not yet delivered to the guest.
    pub fn keys_pending(&self) -> usize {
        self.host_keys.len() + self.bus.get(self.chipset.kbc).host_keys_pending()
    }

    /// Hands the held host keys to the 8042 once the guest is ready for
    /// them (see `key_events`).
    fn release_keys(&mut self) {
        let cs = self.chipset;
        if !self.keys_flowing {
            let pic = self.bus.get(cs.pic);
            let via_pic = pic.initialized(0)
                && pic.mask_written(0)
                && pic.imr() & (1 << irqs::KEYBOARD) == 0
                && self.bus.get(cs.lapic).lint0_extint();
            let pin = crate::board::ioapic_pin(irqs::KEYBOARD);
            let via_ioapic = self.bus.get(cs.ioapic).entry(pin) & (1 << 16) == 0;
            let polled = self.bus.get(cs.kbc).idle_polls() >= KEY_WAIT_POLLS;
            self.keys_flowing = via_pic || via_ioapic || polled;
        }
        if self.keys_flowing {
            let keys = std::mem::take(&mut self.host_keys);
            let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf)
                .with_memory(&mut self.mem);
            self.bus.get_mut(cs.kbc).key_events(keys, &mut cx);
        }
    }

    /// Everything written to the debug console port 0xE9.
    pub fn debugcon_output(&self) -> &[u8] {
        self.bus.get(self.chipset.debugcon).output()
    }

    /// Maps a firmware ROM image as a PC does: read-only at the top of the
    /// first megabyte (over RAM) and at the top of the 4 GiB address
    /// space. Start the CPU from `CpuState::reset()`. Errors name the
    /// problem (size, no code at the reset vector).
    pub fn load_rom(&mut self, image: &[u8]) -> Result<RomMap, crate::devices::rom::RomError> {
        use crate::devices::rom::{Rom, RomError};
        if self.rom.is_some() {
            return Err(RomError::AlreadyLoaded);
        }
        let rom = Rom::new(image)?;
        let size = image.len();
        let low = (0x10_0000 - size) as u64;
        self.mem.write_rom(low, image).map_err(RomError::Memory)?;
        self.mem.set_read_only(low, 0x10_0000);
        let high = (1u64 << 32) - size as u64;
        let id = self.bus.add(rom);
        self.bus
            .map_mmio(id, high, size as u64)
            .map_err(RomError::Overlap)?;
        self.rom = Some(id);
        Ok(self.rom_map().expect("just loaded"))
    }

    /// Where the ROM is, if one is loaded.
    pub fn rom_map(&self) -> Option<RomMap> {
        let id = self.rom?;
        let rom = self.bus.get(id);
        let size = rom.size();
        Some(RomMap {
            size,
            low: (0x10_0000 - size) as u32,
            high: (1u64 << 32) - size as u64,
            host: rom.host_base(),
        })
    }

    /// The byte at physical `addr` in RAM or ROM, read without touching any
    /// device (for debuggers and disassemblers); None elsewhere.
    pub fn peek_phys(&self, addr: u32) -> Option<u8> {
        let a = (addr & self.a20_mask) as u64;
        if let Some(b) = self.mem.read_u8(a) {
            return Some(b);
        }
        let id = self.rom?;
        let rom = self.bus.get(id);
        let high = (1u64 << 32) - rom.size() as u64;
        a.checked_sub(high).and_then(|off| rom.peek(off))
    }

    /// Writes the guest made to the ROM (both aliases), all ignored.
    pub fn rom_writes(&self) -> u64 {
        self.rom_low_writes + self.rom.map_or(0, |id| self.bus.get(id).writes())
    }

    /// Makes every POST code write stop the run (`Stop::PostCode`), so the
    /// frontend can time the phases a guest marks; off by default.
    pub fn set_stop_on_post(&mut self, on: bool) {
        self.bus.get_mut(self.chipset.post).stop_on_write = on;
    }

    /// POST codes written to port 0x80, in order.
    pub fn post_codes(&self) -> &[u8] {
        self.bus.get(self.chipset.post).codes()
    }

    /// The VGA text screen as the guest left it in memory.
    pub fn screen(&self) -> Screen {
        self.bus.get(self.chipset.vga).screen(&self.mem)
    }
}
