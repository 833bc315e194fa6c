//! Port I/O and MMIO dispatch.
//!
//! Devices are mapped over address ranges; a handler gets the offset into its
//! range, the access size and the value, never the absolute address, so a
//! device can be mapped anywhere (a second UART at 0x2F8 is just another
//! mapping). A device may own several ranges (the 8259A pair: 0x20 and 0xA0);
//! the `region` argument says which of its ranges was hit, in the order they
//! were mapped.
//!
//! Devices talk to the rest of the machine only through [`IoCtx`]: the
//! current virtual time, interrupt request lines, and requests to the machine
//! (stop, A20, reset). The machine applies them after the access, so devices
//! never hold references to each other.

use std::any::Any;

/// One of a device's effects on the machine, besides its register values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The guest asked to stop the machine (isa-debug-exit, Bochs shutdown).
    Stop(crate::MachineStop),
    /// The A20 gate changed (port 0x92).
    A20(bool),
}

/// What a device may touch while handling an access or a tick.
pub struct IoCtx<'a> {
    /// Virtual nanoseconds now.
    pub now: u64,
    /// ISA IRQ line level changes, in order (line, level).
    irq: &'a mut Vec<(u8, bool)>,
    requests: &'a mut Vec<Request>,
    /// Guest RAM, for a bus master's DMA (`dma_read`, `dma_write`).
    mem: Option<&'a mut crate::memory::GuestMemory>,
}

/// A DMA transfer that did not reach RAM (no RAM there, or none given to
/// this context).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("DMA of {len} bytes at {addr:#x} is outside guest RAM")]
pub struct DmaError {
    pub addr: u64,
    pub len: usize,
}

impl<'a> IoCtx<'a> {
    pub fn new(now: u64, irq: &'a mut Vec<(u8, bool)>, requests: &'a mut Vec<Request>) -> Self {
        IoCtx {
            now,
            irq,
            requests,
            mem: None,
        }
    }
    /// Gives the device access to guest RAM (the machine does for every
    /// access).
    pub fn with_memory(mut self, mem: &'a mut crate::memory::GuestMemory) -> Self {
        self.mem = Some(mem);
        self
    }
    /// A bus master reads guest RAM at physical `addr` (the A20 gate is the
    /// CPU's: DMA sees every address line).
    pub fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let err = DmaError {
            addr,
            len: buf.len(),
        };
        let mem = self.mem.as_deref_mut().ok_or(err.clone())?;
        mem.read(addr, buf).map_err(|_| err)
    }
    /// A bus master writes guest RAM; code pages it touches are dropped
    /// from the engines' caches as for a CPU write.
    pub fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        let err = DmaError {
            addr,
            len: data.len(),
        };
        let mem = self.mem.as_deref_mut().ok_or(err.clone())?;
        mem.write(addr, data).map_err(|_| err)
    }
    /// Drives ISA interrupt line `line` (0-15) to `level`.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        self.irq.push((line, level));
    }
    /// A low-high transition on `line`: one edge for an edge-triggered 8259A.
    pub fn pulse_irq(&mut self, line: u8) {
        self.irq.push((line, false));
        self.irq.push((line, true));
    }
    pub fn request(&mut self, r: Request) {
        self.requests.push(r);
    }
}

/// A chip on the bus.
pub trait Device: Any {
    /// The chip's name, for statistics and errors ("8259A PIC").
    fn name(&self) -> &'static str;

    /// Port read of `size` (1, 2 or 4) bytes at `offset` into range `region`.
    fn pio_read(&mut self, _region: usize, _offset: u16, size: u8, _cx: &mut IoCtx) -> u32 {
        all_ones(size)
    }

    /// Port write.
    fn pio_write(&mut self, _region: usize, _offset: u16, _size: u8, _value: u32, _cx: &mut IoCtx) {
    }

    /// String input (REP INSB/INSW/INSD) from one port: fills `out` with as
    /// many whole `size`-byte items as the device can produce at once and
    /// returns the number of bytes written (a multiple of `size`, at most
    /// `out.len()`). A data port that moves blocks (the ATA data register)
    /// implements this so a sector moves in one call; the default, 0, means
    /// "no bulk path" and the caller falls back to single `pio_read`s. The
    /// result must equal what that many single reads would have returned.
    fn pio_read_bulk(
        &mut self,
        _region: usize,
        _offset: u16,
        _size: u8,
        _out: &mut [u8],
        _cx: &mut IoCtx,
    ) -> usize {
        0
    }

    /// String output (REP OUTSB/OUTSW/OUTSD) to one port: consumes as many
    /// whole `size`-byte items of `data` as the device takes at once and
    /// returns the number of bytes consumed; 0 means "no bulk path".
    fn pio_write_bulk(
        &mut self,
        _region: usize,
        _offset: u16,
        _size: u8,
        _data: &[u8],
        _cx: &mut IoCtx,
    ) -> usize {
        0
    }

    /// MMIO read of `size` (1, 2, 4 or 8) bytes.
    fn mmio_read(&mut self, _region: usize, _offset: u64, size: u8, _cx: &mut IoCtx) -> u64 {
        all_ones(size) as u64 | if size == 8 { u64::MAX } else { 0 }
    }

    /// MMIO write.
    fn mmio_write(
        &mut self,
        _region: usize,
        _offset: u64,
        _size: u8,
        _value: u64,
        _cx: &mut IoCtx,
    ) {
    }

    /// True when reading the register at `offset` of MMIO range `region`
    /// changes nothing and does not depend on the time within a stretch
    /// of instructions that ends before the next device deadline: the
    /// translator may then read it from translated code, with the clock
    /// where the stretch began (a local APIC's ID on every spinlock of
    /// xv6). Default: no.
    fn mmio_read_is_pure(&self, _region: usize, _offset: u64) -> bool {
        false
    }

    /// Reads `size` bytes at `offset` of MMIO range `region` as
    /// `mmio_read` does when that read is pure (`mmio_read_is_pure` for
    /// its first and its last byte), else None with nothing done. One
    /// call for what took three; a device may answer its common case
    /// without asking twice (the local APIC).
    fn mmio_read_pure(
        &mut self,
        region: usize,
        offset: u64,
        size: u8,
        cx: &mut IoCtx,
    ) -> Option<u64> {
        let last = offset + size as u64 - 1;
        if !self.mmio_read_is_pure(region, offset) || !self.mmio_read_is_pure(region, last) {
            return None;
        }
        Some(self.mmio_read(region, offset, size, cx))
    }

    /// True when the value a pure read (`mmio_read_pure`) of `size` bytes
    /// at `offset` returns, and whether it is served at all, change only
    /// through this device's own port and MMIO accesses and through
    /// `Bus::get_mut`: never with time or ticks (a local APIC's ID and
    /// version). A translator may then keep the value until the bus's
    /// `stable_epoch` moves, and hand the reads it served over with
    /// `count_stable_reads`. Default: no.
    fn mmio_read_is_stable(&self, _region: usize, _offset: u64, _size: u8) -> bool {
        false
    }

    /// Counts `n` reads of a stable register (`mmio_read_is_stable`) made
    /// without calling the device, as if each had been made.
    fn count_stable_reads(&mut self, _region: usize, _offset: u64, _size: u8, _n: u64) {}

    /// The name of the register at `offset` of MMIO range `region` ("EOI"),
    /// for traces that count accesses by register (KVM's MMIO exits).
    fn mmio_register_name(&self, _region: usize, _offset: u64) -> Option<&'static str> {
        None
    }

    /// The next virtual time at which the device wants `tick` called.
    fn next_deadline(&self) -> Option<u64> {
        None
    }

    /// Called when virtual time reaches or passes `next_deadline`.
    fn tick(&mut self, _cx: &mut IoCtx) {}
}

/// The value an access of `size` bytes reads from an empty bus.
#[inline]
pub fn all_ones(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// A typed handle to a device on the bus.
pub struct DeviceId<T> {
    index: usize,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for DeviceId<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DeviceId<T> {}
impl<T> std::fmt::Debug for DeviceId<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceId({})", self.index)
    }
}

#[derive(Clone, Copy, Debug)]
struct Mapping {
    start: u64,
    end: u64, // inclusive
    device: usize,
    region: usize,
}

/// Where a mapping attempt went wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} range {start:#x}..={end:#x} for {device} overlaps {other}")]
pub struct OverlapError {
    pub what: &'static str,
    pub start: u64,
    pub end: u64,
    pub device: &'static str,
    pub other: &'static str,
}

/// Counters the bus keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    pub pio_reads: u64,
    pub pio_writes: u64,
    pub mmio_reads: u64,
    pub mmio_writes: u64,
    pub unclaimed_pio_reads: u64,
    pub unclaimed_pio_writes: u64,
    pub unclaimed_mmio_reads: u64,
    pub unclaimed_mmio_writes: u64,
}

const NO_DEVICE: u16 = u16::MAX;

pub struct Bus {
    devices: Vec<Box<dyn Device>>,
    /// Each device's `next_deadline` (u64::MAX: none) as of its last access
    /// or tick: a device's deadline changes only then, or through
    /// `get_mut`, which marks every entry stale.
    deadlines: Vec<u64>,
    deadlines_stale: bool,
    /// The least of `deadlines` unless `earliest_stale` (the device that
    /// held it moved its deadline later): kept as they change, so that
    /// the check after every port access reads one value instead of
    /// every device's.
    earliest: u64,
    earliest_stale: bool,
    regions_per_device: Vec<usize>,
    /// Port -> index into `pio` (NO_DEVICE when unclaimed): O(1) dispatch,
    /// 128 KiB.
    port_map: Vec<u16>,
    pio: Vec<Mapping>,
    mmio: Vec<Mapping>,
    /// Moves (to a number no bus has had) at every access that may change
    /// a device's state other than a pure read or a tick: what a stable
    /// register's cached value is checked against (`stable_epoch`).
    stable_epoch: u64,
    pub stats: BusStats,
}

/// Where the next `Bus::stable_epoch` comes from: numbers unique in the
/// process, so a cached value can never match another bus, or this bus in
/// another state (a snapshot restored).
static STABLE_EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn new_stable_epoch() -> u64 {
    STABLE_EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A stable device register (`Device::mmio_read_is_stable`), as
/// `Bus::stable_register` finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableRegister {
    device: usize,
    region: usize,
    offset: u64,
    size: u8,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    pub fn new() -> Self {
        Bus {
            devices: Vec::new(),
            deadlines: Vec::new(),
            deadlines_stale: false,
            earliest: u64::MAX,
            earliest_stale: false,
            regions_per_device: Vec::new(),
            port_map: vec![NO_DEVICE; 0x10000],
            pio: Vec::new(),
            mmio: Vec::new(),
            stable_epoch: new_stable_epoch(),
            stats: BusStats::default(),
        }
    }

    /// See `stable_epoch` (the field): a cached stable register's value
    /// holds while this does not move.
    #[inline]
    pub fn stable_epoch(&self) -> u64 {
        self.stable_epoch
    }

    /// Where `stable_epoch` is kept, for generated code that compares it:
    /// valid while the bus is neither moved nor dropped.
    pub fn stable_epoch_ptr(&self) -> *const u64 {
        &self.stable_epoch
    }

    /// The stable register (`Device::mmio_read_is_stable`) a `size`-byte
    /// read at `addr` reads, if it is one.
    pub fn stable_register(&self, addr: u64, size: u8) -> Option<StableRegister> {
        let m = self.find_mmio(addr)?;
        let offset = addr - m.start;
        (addr + size as u64 - 1 <= m.end
            && self.devices[m.device].mmio_read_is_stable(m.region, offset, size))
        .then_some(StableRegister {
            device: m.device,
            region: m.region,
            offset,
            size,
        })
    }

    /// Counts `n` reads of `r` served from a cached value, in the bus's
    /// statistics and the device's, as if each had been made.
    pub fn count_stable_reads(&mut self, r: StableRegister, n: u64) {
        self.stats.mmio_reads += n;
        self.devices[r.device].count_stable_reads(r.region, r.offset, r.size, n);
    }

    /// Adds a device (not yet mapped anywhere).
    pub fn add<T: Device>(&mut self, dev: T) -> DeviceId<T> {
        self.devices.push(Box::new(dev));
        self.regions_per_device.push(0);
        self.deadlines.push(u64::MAX);
        self.deadlines_stale = true;
        DeviceId {
            index: self.devices.len() - 1,
            _t: std::marker::PhantomData,
        }
    }

    /// Maps `len` ports from `start` to the device's next region.
    pub fn map_pio<T>(
        &mut self,
        id: DeviceId<T>,
        start: u16,
        len: u16,
    ) -> Result<(), OverlapError> {
        let end = start as u64 + len as u64 - 1;
        assert!(
            len > 0 && end <= 0xFFFF,
            "port range out of the 64 KiB port space"
        );
        for p in start as usize..=end as usize {
            if self.port_map[p] != NO_DEVICE {
                let other = self.devices[self.pio[self.port_map[p] as usize].device].name();
                return Err(OverlapError {
                    what: "port",
                    start: start as u64,
                    end,
                    device: self.devices[id.index].name(),
                    other,
                });
            }
        }
        let region = self.next_region(id.index);
        self.pio.push(Mapping {
            start: start as u64,
            end,
            device: id.index,
            region,
        });
        let m = (self.pio.len() - 1) as u16;
        for p in start as usize..=end as usize {
            self.port_map[p] = m;
        }
        Ok(())
    }

    /// Maps `len` bytes of physical address space from `start` to the
    /// device's next region.
    pub fn map_mmio<T>(
        &mut self,
        id: DeviceId<T>,
        start: u64,
        len: u64,
    ) -> Result<(), OverlapError> {
        assert!(len > 0, "empty MMIO range");
        let end = start + len - 1;
        if let Some(o) = self.mmio.iter().find(|m| m.start <= end && start <= m.end) {
            return Err(OverlapError {
                what: "MMIO",
                start,
                end,
                device: self.devices[id.index].name(),
                other: self.devices[o.device].name(),
            });
        }
        let region = self.next_region(id.index);
        self.mmio.push(Mapping {
            start,
            end,
            device: id.index,
            region,
        });
        Ok(())
    }

    fn next_region(&mut self, device: usize) -> usize {
        let r = self.regions_per_device[device];
        self.regions_per_device[device] += 1;
        r
    }

    /// The device behind a handle.
    pub fn get<T: Device>(&self, id: DeviceId<T>) -> &T {
        let d: &dyn Any = self.devices[id.index].as_ref();
        d.downcast_ref::<T>()
            .expect("DeviceId type matches the device it was made for")
    }

    /// The device behind a handle, mutably.
    pub fn get_mut<T: Device>(&mut self, id: DeviceId<T>) -> &mut T {
        // The host may change the device's timing (input, a disk), and
        // any of its registers.
        self.deadlines_stale = true;
        self.stable_epoch = new_stable_epoch();
        let d: &mut dyn Any = self.devices[id.index].as_mut();
        d.downcast_mut::<T>()
            .expect("DeviceId type matches the device it was made for")
    }

    /// Name of the device claiming `port`, if any.
    pub fn port_owner(&self, port: u16) -> Option<&'static str> {
        match self.port_map[port as usize] {
            NO_DEVICE => None,
            m => Some(self.devices[self.pio[m as usize].device].name()),
        }
    }

    /// (device, register) for the MMIO register at physical `addr`, when
    /// the device there names its registers.
    pub fn mmio_register_name(&self, addr: u64) -> Option<(&'static str, &'static str)> {
        let m = self.find_mmio(addr)?;
        let d = &self.devices[m.device];
        Some((d.name(), d.mmio_register_name(m.region, addr - m.start)?))
    }

    /// True when some device claims physical address `addr`.
    pub fn mmio_claimed(&self, addr: u64) -> bool {
        self.mmio.iter().any(|m| m.start <= addr && addr <= m.end)
    }

    pub fn pio_read(&mut self, port: u16, size: u8, cx: &mut IoCtx) -> u32 {
        self.stable_epoch = new_stable_epoch();
        self.stats.pio_reads += 1;
        match self.port_map[port as usize] {
            NO_DEVICE => {
                self.stats.unclaimed_pio_reads += 1;
                all_ones(size)
            }
            m => {
                let m = self.pio[m as usize];
                let v = self.devices[m.device].pio_read(
                    m.region,
                    (port as u64 - m.start) as u16,
                    size,
                    cx,
                );
                self.refresh_deadline(m.device);
                v & all_ones(size)
            }
        }
    }

    pub fn pio_write(&mut self, port: u16, size: u8, value: u32, cx: &mut IoCtx) {
        self.stable_epoch = new_stable_epoch();
        self.stats.pio_writes += 1;
        match self.port_map[port as usize] {
            NO_DEVICE => self.stats.unclaimed_pio_writes += 1,
            m => {
                let m = self.pio[m as usize];
                self.devices[m.device].pio_write(
                    m.region,
                    (port as u64 - m.start) as u16,
                    size,
                    value & all_ones(size),
                    cx,
                );
                self.refresh_deadline(m.device);
            }
        }
    }

    /// String input from `port` into `out` through the device's bulk path:
    /// the bytes produced (whole items), 0 when the port has no bulk path
    /// (the caller then reads item by item).
    pub fn pio_read_bulk(&mut self, port: u16, size: u8, out: &mut [u8], cx: &mut IoCtx) -> usize {
        self.stable_epoch = new_stable_epoch();
        let m = match self.port_map[port as usize] {
            NO_DEVICE => return 0,
            m => self.pio[m as usize],
        };
        let whole = out.len() / size as usize * size as usize;
        let n = self.devices[m.device]
            .pio_read_bulk(
                m.region,
                (port as u64 - m.start) as u16,
                size,
                &mut out[..whole],
                cx,
            )
            .min(whole);
        self.refresh_deadline(m.device);
        self.stats.pio_reads += (n / size as usize) as u64;
        n
    }

    /// String output to `port` through the device's bulk path: the bytes
    /// consumed, 0 when the port has none.
    pub fn pio_write_bulk(&mut self, port: u16, size: u8, data: &[u8], cx: &mut IoCtx) -> usize {
        self.stable_epoch = new_stable_epoch();
        let m = match self.port_map[port as usize] {
            NO_DEVICE => return 0,
            m => self.pio[m as usize],
        };
        let whole = data.len() / size as usize * size as usize;
        let n = self.devices[m.device]
            .pio_write_bulk(
                m.region,
                (port as u64 - m.start) as u16,
                size,
                &data[..whole],
                cx,
            )
            .min(whole);
        self.refresh_deadline(m.device);
        self.stats.pio_writes += (n / size as usize) as u64;
        n
    }

    fn find_mmio(&self, addr: u64) -> Option<Mapping> {
        self.mmio
            .iter()
            .copied()
            .find(|m| m.start <= addr && addr <= m.end)
    }

    pub fn mmio_read(&mut self, addr: u64, size: u8, cx: &mut IoCtx) -> u64 {
        self.stable_epoch = new_stable_epoch();
        self.stats.mmio_reads += 1;
        match self.find_mmio(addr) {
            None => {
                self.stats.unclaimed_mmio_reads += 1;
                if size == 8 {
                    u64::MAX
                } else {
                    all_ones(size) as u64
                }
            }
            Some(m) => {
                let v = self.devices[m.device].mmio_read(m.region, addr - m.start, size, cx);
                self.refresh_deadline(m.device);
                v
            }
        }
    }

    /// A read of `size` bytes at `addr` if one device's registers hold
    /// them all and reading them is pure (`Device::mmio_read_is_pure` at
    /// the first and the last byte), else None: one lookup, where
    /// `mmio_read_is_pure` twice and `mmio_read` made three (a translated
    /// xv6 reads its local APIC's ID 15 million times a second).
    pub fn read_pure(&mut self, addr: u64, size: u8, cx: &mut IoCtx) -> Option<u64> {
        let m = self.find_mmio(addr)?;
        if addr + size as u64 - 1 > m.end {
            return None;
        }
        let v = self.devices[m.device].mmio_read_pure(m.region, addr - m.start, size, cx)?;
        self.stats.mmio_reads += 1;
        self.refresh_deadline(m.device);
        Some(v)
    }

    pub fn mmio_write(&mut self, addr: u64, size: u8, value: u64, cx: &mut IoCtx) {
        self.stable_epoch = new_stable_epoch();
        self.stats.mmio_writes += 1;
        match self.find_mmio(addr) {
            None => self.stats.unclaimed_mmio_writes += 1,
            Some(m) => {
                self.devices[m.device].mmio_write(m.region, addr - m.start, size, value, cx);
                self.refresh_deadline(m.device);
            }
        }
    }

    #[inline]
    fn refresh_deadline(&mut self, device: usize) {
        let new = self.devices[device].next_deadline().unwrap_or(u64::MAX);
        let old = std::mem::replace(&mut self.deadlines[device], new);
        if new <= self.earliest {
            self.earliest = new;
        } else if old == self.earliest {
            // It held the earliest, and moved later: another may now.
            self.earliest_stale = true;
        }
    }

    /// The earliest deadline of any device.
    pub fn next_deadline(&mut self) -> Option<u64> {
        if self.deadlines_stale {
            for i in 0..self.devices.len() {
                self.refresh_deadline(i);
            }
            self.deadlines_stale = false;
        }
        if self.earliest_stale {
            self.earliest = self.deadlines.iter().copied().min().unwrap_or(u64::MAX);
            self.earliest_stale = false;
        }
        let t = self.earliest;
        (t != u64::MAX).then_some(t)
    }

    /// Ticks every device whose deadline is at or before `cx.now`.
    pub fn tick_due(&mut self, cx: &mut IoCtx) {
        // A tick may change any device's deadline (the line it raised
        // makes no other device change, but the tick moves its own).
        self.deadlines_stale = true;
        for d in &mut self.devices {
            // A device may need several ticks if time jumped over several
            // of its deadlines; each tick must move its deadline forward, and
            // the bound keeps a buggy device from hanging the machine.
            for _ in 0..64 {
                match d.next_deadline() {
                    Some(t) if t <= cx.now => d.tick(cx),
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo {
        last: Vec<(usize, u16, u8, u32)>,
    }
    impl Device for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn pio_read(&mut self, region: usize, offset: u16, _size: u8, _cx: &mut IoCtx) -> u32 {
            (region as u32) << 16 | offset as u32
        }
        fn pio_write(&mut self, region: usize, offset: u16, size: u8, value: u32, _cx: &mut IoCtx) {
            self.last.push((region, offset, size, value));
        }
    }

    #[test]
    fn dispatch_by_range_with_offsets_and_regions() {
        let mut bus = Bus::new();
        let id = bus.add(Echo { last: vec![] });
        bus.map_pio(id, 0x20, 2).unwrap();
        bus.map_pio(id, 0xA0, 2).unwrap();
        let (mut irq, mut req) = (vec![], vec![]);
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        assert_eq!(bus.pio_read(0x21, 2, &mut cx), 1);
        assert_eq!(bus.pio_read(0xA1, 4, &mut cx), 0x1_0001);
        bus.pio_write(0xA0, 1, 0x1FF, &mut cx);
        assert_eq!(bus.get(id).last, vec![(1, 0, 1, 0xFF)]);
        // Unclaimed ports read all ones and are counted.
        assert_eq!(bus.pio_read(0x1234, 1, &mut cx), 0xFF);
        assert_eq!(bus.pio_read(0x1234, 2, &mut cx), 0xFFFF);
        bus.pio_write(0x1234, 1, 0, &mut cx);
        assert_eq!(bus.stats.unclaimed_pio_reads, 2);
        assert_eq!(bus.stats.unclaimed_pio_writes, 1);
        assert_eq!(bus.port_owner(0x20), Some("echo"));
        assert_eq!(bus.port_owner(0x22), None);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut bus = Bus::new();
        let a = bus.add(Echo { last: vec![] });
        bus.map_pio(a, 0x3F8, 8).unwrap();
        assert!(bus.map_pio(a, 0x3FF, 1).is_err());
        bus.map_mmio(a, 0xFFFF_0000, 0x10000).unwrap();
        assert!(bus.map_mmio(a, 0xFFFF_8000, 0x10).is_err());
    }

    /// A timer: a byte v written sets its deadline to v (0: none).
    struct Alarm(Option<u64>);
    impl Device for Alarm {
        fn name(&self) -> &'static str {
            "alarm"
        }
        fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, v: u32, _cx: &mut IoCtx) {
            self.0 = (v != 0).then_some(v as u64);
        }
        fn next_deadline(&self) -> Option<u64> {
            self.0
        }
    }

    /// The earliest deadline follows every device's as accesses move
    /// them: earlier, later (the one that held the earliest, or a tie),
    /// gone.
    #[test]
    fn the_earliest_deadline_follows_the_devices() {
        let mut bus = Bus::new();
        for port in 0..3u16 {
            let id = bus.add(Alarm(None));
            bus.map_pio(id, 0x10 + port, 1).unwrap();
        }
        let (mut irq, mut req) = (vec![], vec![]);
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        assert_eq!(bus.next_deadline(), None);
        let steps: &[(u16, u32, Option<u64>)] = &[
            (0x10, 50, Some(50)),
            (0x11, 30, Some(30)),
            (0x12, 30, Some(30)), // a tie
            (0x11, 90, Some(30)), // one of the tie moves later
            (0x12, 0, Some(50)),  // the other goes
            (0x10, 100, Some(90)),
            (0x11, 0, Some(100)),
            (0x10, 0, None),
            (0x12, 7, Some(7)),
        ];
        for &(port, v, want) in steps {
            bus.pio_write(port, 1, v, &mut cx);
            assert_eq!(bus.next_deadline(), want, "after {v} to {port:#x}");
        }
    }

    /// A bus master: a write of v to its port copies 4 bytes of v to RAM
    /// at 0x1000 and reads them back.
    struct Dma;
    impl Device for Dma {
        fn name(&self) -> &'static str {
            "dma"
        }
        fn pio_write(&mut self, _r: usize, _o: u16, _size: u8, v: u32, cx: &mut IoCtx) {
            cx.dma_write(0x1000, &v.to_le_bytes()).unwrap();
            let mut b = [0u8; 4];
            cx.dma_read(0x1000, &mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), v);
            assert!(cx.dma_write(1 << 40, &[0]).is_err());
        }
    }

    #[test]
    fn a_device_reaches_ram_through_its_context() {
        let mut mem = crate::memory::GuestMemory::new(1 << 20).unwrap();
        mem.mark_code_page(1);
        let mut bus = Bus::new();
        let id = bus.add(Dma);
        bus.map_pio(id, 0x10, 1).unwrap();
        let (mut irq, mut req) = (vec![], vec![]);
        let mut cx = IoCtx::new(0, &mut irq, &mut req).with_memory(&mut mem);
        bus.pio_write(0x10, 4, 0xDEAD_BEEF, &mut cx);
        assert_eq!(mem.read_u32(0x1000).unwrap(), 0xDEAD_BEEF);
        assert!(mem.has_written_code_pages(), "a DMA write to code is noted");
        // Without memory, DMA is refused, not a panic.
        let mut cx = IoCtx::new(0, &mut irq, &mut req);
        assert!(cx.dma_write(0, &[1]).is_err());
    }
}
