//! The PC: RAM, the bus with its chipset, the clock and the trace.
//!
//! Engines own the CPU; everything else lives here and is shared by every
//! engine, so a run can move from one engine to another mid-way.

use crate::bus::{Bus, DeviceId, IoCtx, Request};
use crate::devices::{
    debugcon::DebugCon, exit::BochsShutdown, exit::DebugExit, pic::Pic, pit::Pit, port92::Port92,
    post::PostCodes, uart::Uart16550, vga::Screen, vga::Vga,
};
use crate::event::Event;
use crate::memory::{GuestMemory, MemoryError};
use crate::{Clock, ClockMode, Trace};

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
}

impl MachineStop {
    pub fn to_stop(self) -> crate::Stop {
        match self {
            MachineStop::Exit(value) => crate::Stop::GuestExit { value },
            MachineStop::Shutdown => crate::Stop::Shutdown,
            MachineStop::Reset => crate::Stop::Reset,
            MachineStop::PostCode(code) => crate::Stop::PostCode { code },
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
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            ram_bytes: DEFAULT_RAM,
            bare_bus: false,
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
    pub com1: DeviceId<Uart16550>,
    pub vga: DeviceId<Vga>,
    pub debugcon: DeviceId<DebugCon>,
    pub post: DeviceId<PostCodes>,
    pub port92: DeviceId<Port92>,
    pub debug_exit: DeviceId<DebugExit>,
    pub bochs: DeviceId<BochsShutdown>,
}

/// Standard port assignments (PC/AT, QEMU and Bochs conventions).
pub mod ports {
    pub const PIC_MASTER: u16 = 0x20;
    pub const PIC_SLAVE: u16 = 0xA0;
    pub const PIT: u16 = 0x40;
    pub const SYSTEM_CONTROL_B: u16 = 0x61;
    pub const POST: u16 = 0x80;
    pub const FAST_A20: u16 = 0x92;
    pub const DEBUG_EXIT: u16 = 0xF4;
    pub const VGA: u16 = 0x3B0;
    pub const COM1: u16 = 0x3F8;
    pub const DEBUGCON: u16 = 0xE9;
    pub const BOCHS_SHUTDOWN: u16 = 0x8900;
}

/// ISA IRQ lines of the standard devices.
pub mod irqs {
    pub const PIT: u8 = 0;
    pub const CASCADE: u8 = 2;
    pub const COM1: u8 = 4;
}

pub struct Machine {
    pub mem: GuestMemory,
    pub bus: Bus,
    pub clock: Clock,
    pub trace: Trace,
    pub chipset: Chipset,
    icount: u64,
    a20_mask: u32,
    mapping_generation: u64,
    stop: Option<MachineStop>,
    /// The 8259A's INT output, cached after every change to the PIC.
    intr: bool,
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

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("mem", &self.mem)
            .field("icount", &self.icount)
            .finish()
    }
}

impl Machine {
    /// A PC with `cfg.ram_bytes` of RAM and the standard chipset.
    pub fn new(cfg: MachineConfig) -> Result<Machine, MemoryError> {
        let mem = GuestMemory::new(cfg.ram_bytes)?;
        let mut bus = Bus::new();
        let pic = bus.add(Pic::new());
        let pit = bus.add(Pit::new());
        let com1 = bus.add(Uart16550::new(irqs::COM1));
        let vga = bus.add(Vga::new());
        let debugcon = bus.add(DebugCon::default());
        let post = bus.add(PostCodes::default());
        let port92 = bus.add(Port92::default());
        let debug_exit = bus.add(DebugExit);
        let bochs = bus.add(BochsShutdown::default());
        let map = |r: Result<(), crate::bus::OverlapError>| {
            r.expect("standard chipset ranges are disjoint")
        };
        if !cfg.bare_bus {
            map(bus.map_pio(pic, ports::PIC_MASTER, 2));
            map(bus.map_pio(pic, ports::PIC_SLAVE, 2));
            map(bus.map_pio(pit, ports::PIT, 4));
            map(bus.map_pio(pit, ports::SYSTEM_CONTROL_B, 1));
            map(bus.map_pio(com1, ports::COM1, 8));
            map(bus.map_pio(vga, ports::VGA, 0x30));
            map(bus.map_pio(debugcon, ports::DEBUGCON, 1));
            map(bus.map_pio(post, ports::POST, 1));
            map(bus.map_pio(port92, ports::FAST_A20, 1));
            // QEMU's isa-debug-exit with iosize=4.
            map(bus.map_pio(debug_exit, ports::DEBUG_EXIT, 4));
            map(bus.map_pio(bochs, ports::BOCHS_SHUTDOWN, 1));
        }
        let mut m = Machine {
            mem,
            bus,
            clock: Clock::new(),
            trace: Trace::default(),
            chipset: Chipset {
                pic,
                pit,
                com1,
                vga,
                debugcon,
                post,
                port92,
                debug_exit,
                bochs,
            },
            icount: 0,
            a20_mask: u32::MAX,
            mapping_generation: 0,
            stop: None,
            intr: false,
            deadline: u64::MAX,
            irq_buf: Vec::new(),
            req_buf: Vec::new(),
            rom: None,
            rom_low_writes: 0,
        };
        m.after_device_activity();
        Ok(m)
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
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
        self.bus.tick_due(&mut cx);
        self.after_device_activity();
    }

    /// Routes IRQ line changes to the PIC, carries out device requests, and
    /// refreshes the cached INTR line and deadline.
    fn after_device_activity(&mut self) {
        if !self.irq_buf.is_empty() {
            let changes = std::mem::take(&mut self.irq_buf);
            let pic = self.bus.get_mut(self.chipset.pic);
            for &(line, level) in &changes {
                pic.set_irq(line, level);
            }
            self.irq_buf = changes;
            self.irq_buf.clear();
        }
        for i in 0..self.req_buf.len() {
            match self.req_buf[i] {
                Request::Stop(s) => {
                    self.stop.get_or_insert(s);
                }
                Request::A20(on) => {
                    let mask = if on { u32::MAX } else { !(1 << 20) };
                    if mask != self.a20_mask {
                        self.a20_mask = mask;
                        self.mapping_generation += 1;
                    }
                }
            }
        }
        self.req_buf.clear();
        self.intr = self.bus.get(self.chipset.pic).intr();
        self.deadline = self.bus.next_deadline().unwrap_or(u64::MAX);
    }

    // ---- interrupts -----------------------------------------------------

    /// The PIC's INT output: an unmasked interrupt request is waiting.
    #[inline]
    pub fn interrupt_pending(&self) -> bool {
        self.intr
    }

    /// The CPU's interrupt-acknowledge cycle: returns the vector (possibly a
    /// spurious IRQ7/IRQ15 vector, SDM-less but 8259A datasheet behaviour).
    pub fn acknowledge_interrupt(&mut self) -> u8 {
        let v = self.bus.get_mut(self.chipset.pic).acknowledge();
        self.after_device_activity();
        v
    }

    // ---- port I/O -------------------------------------------------------

    pub fn io_read(&mut self, port: u16, size: u8) -> u32 {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
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
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
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

    // ---- physical memory ------------------------------------------------

    /// The mask applied to every physical address: bit 20 cleared while the
    /// A20 gate is off (real address wraparound at 1 MiB, as on the 8086).
    #[inline]
    pub fn a20_mask(&self) -> u32 {
        self.a20_mask
    }

    /// Changes whenever the physical address map changes (A20 toggled);
    /// engines flush their TLBs when it does.
    #[inline]
    pub fn mapping_generation(&self) -> u64 {
        self.mapping_generation
    }

    /// Reads `size` (1, 2, 4 or 8) bytes of physical memory: RAM, else a
    /// device's MMIO, else all ones. The A20 mask is applied.
    pub fn read_phys(&mut self, addr: u32, size: u8) -> u64 {
        let a = (addr & self.a20_mask) as u64;
        let mut buf = [0u8; 8];
        if self.mem.read(a, &mut buf[..size as usize]).is_ok() {
            return u64::from_le_bytes(buf);
        }
        if self.bus.mmio_claimed(a) {
            let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
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
                let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
                self.bus.mmio_read(b, 1, &mut cx) as u8
            });
            v |= (byte as u64) << (8 * i);
        }
        self.after_device_activity();
        v
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
            let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
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
                    let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
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

    /// Takes the COM1 output produced since the last call.
    pub fn take_serial_output(&mut self) -> Vec<u8> {
        self.bus.get_mut(self.chipset.com1).take_output()
    }

    /// Queues bytes for the guest to receive on COM1.
    pub fn serial_input(&mut self, data: &[u8]) {
        let mut cx = IoCtx::new(self.clock.now(), &mut self.irq_buf, &mut self.req_buf);
        self.bus
            .get_mut(self.chipset.com1)
            .push_input(data, &mut cx);
        self.after_device_activity();
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
