//! ringlab's KVM engine: the same machine on the real CPU through
//! /dev/kvm. Guest RAM is the machine's own mapping; there is no in-kernel
//! PIC or PIT — the shared 8259A and 8254 in user space serve this engine
//! as they serve the others, so interrupts are injected with KVM_INTERRUPT
//! and device deadlines interrupt KVM_RUN through a timer signal. Ring
//! transitions happen in silicon: the engine sees only VM exits, and that
//! is what it reports. See `../shared/DESIGN.md`, "KVM engine, in short".

pub mod exits;
pub mod host;
pub mod memory;
pub mod state;
pub mod timer;

use exits::{Action, Exit};
use host::HostKind;
use kvm_bindings::{kvm_cpuid_entry2, kvm_msr_entry, CpuId, Msrs};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use machine::cpu::{access, cr0, flags as f, msr, CpuState};
use machine::{ClockMode, Engine, EngineError, EngineStats, Limits, Machine, PrivCause, Stop};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// KVM_INTERRUPT: _IOW(KVMIO, 0x86, struct kvm_interrupt) — not wrapped by
/// kvm-ioctls.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_AE86;

/// IA32_APIC_BASE (SDM Vol 3A 11.4.4).
const IA32_APIC_BASE: u32 = 0x1B;

pub struct Kvm {
    host: HostKind,
    vm: VmFd,
    /// Memory slots in use (`memory::slots`), and whether A20 was open
    /// and which ROM was mapped when they were made.
    slots: u32,
    a20: bool,
    rom_size: Option<u64>,
    /// KVM_CAP_READONLY_MEM: read-only slots (for a ROM).
    readonly_mem: bool,
    vcpu: VcpuFd,
    /// Virtual time minus host time since `epoch` (moves when HLT warps).
    time_offset: i128,
    epoch: Instant,
    exits: BTreeMap<&'static str, u64>,
    injected: u64,
    /// Host time KVM_CREATE_VM to a ready vCPU took, in microseconds.
    setup_us: u64,
    last: Option<CpuState>,
    /// `step` is running: a debug exit ends the run.
    stepping: bool,
    /// Instructions run by single stepping: the only ones KVM can count.
    stepped: u64,
    /// The "hardware" under KVM is QEMU's TCG (the test VM): TR is
    /// imported with its TSS type marked available, as TCG caches it.
    tcg_host: bool,
    /// A breakpoint we stopped at, stepped over before running on.
    resume_bp: Option<u32>,
    /// The last exit was port I/O or MMIO and KVM has not re-entered the
    /// guest since: the instruction is not complete (EIP still on it, an IN
    /// not yet in EAX) until the next KVM_RUN.
    io_pending: bool,
}

/// Creates the KVM engine over `m`, or says why this host cannot.
pub fn create(m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Ok(Box::new(Kvm::new(m)?))
}

fn host_err(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Host(format!("{what}: {e}"))
}

impl Kvm {
    pub fn new(m: &mut Machine) -> Result<Kvm, EngineError> {
        let started = Instant::now();
        let host = host::detect();
        let kvm = host::open()?;
        let vm = kvm.create_vm().map_err(|e| host_err("KVM_CREATE_VM", e))?;
        let readonly_mem = kvm.check_extension(kvm_ioctls::Cap::ReadonlyMem);
        // Needed by VMX without unrestricted guest for real mode; harmless
        // elsewhere (kvm-pvm and AMD ignore or refuse it).
        let _ = vm.set_tss_address(0xFFFB_D000);
        let vcpu = vm
            .create_vcpu(0)
            .map_err(|e| host_err("KVM_CREATE_VCPU", e))?;
        // The machine's fixed CPUID table, so the guest sees one CPU on
        // every engine.
        let entries: Vec<kvm_cpuid_entry2> = machine::cpuid::entries()
            .into_iter()
            .map(|(function, index, r)| kvm_cpuid_entry2 {
                function,
                index,
                flags: 0,
                eax: r[0],
                ebx: r[1],
                ecx: r[2],
                edx: r[3],
                ..Default::default()
            })
            .collect();
        let cpuid =
            CpuId::from_entries(&entries).map_err(|e| host_err("CPUID table", format!("{e:?}")))?;
        vcpu.set_cpuid2(&cpuid)
            .map_err(|e| host_err("KVM_SET_CPUID2", e))?;
        // The machine has no local APIC. KVM reports CPUID.01H:EDX.APIC
        // from IA32_APIC_BASE's global enable (bit 11), whatever the table
        // says, so turn that off: the guest then sees the table's CPUID.
        // (0xFEE00000 is the architectural base; bit 8 marks the BSP.)
        let apic_off = Msrs::from_entries(&[kvm_msr_entry {
            index: IA32_APIC_BASE,
            data: 0xFEE0_0000 | (1 << 8),
            ..Default::default()
        }])
        .map_err(|e| host_err("MSR list", format!("{e:?}")))?;
        match vcpu.set_msrs(&apic_off) {
            Ok(1) => {}
            Ok(_) => return Err(host_err("KVM_SET_MSRS", "IA32_APIC_BASE refused")),
            Err(e) => return Err(host_err("KVM_SET_MSRS (IA32_APIC_BASE)", e)),
        }
        let mut k = Kvm {
            host,
            vm,
            slots: 0,
            a20: true,
            rom_size: None,
            readonly_mem,
            vcpu,
            time_offset: m.clock.now() as i128,
            epoch: Instant::now(),
            exits: BTreeMap::new(),
            injected: 0,
            setup_us: 0,
            last: None,
            stepping: false,
            stepped: 0,
            tcg_host: host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG"),
            resume_bp: None,
            io_pending: false,
        };
        k.map_ram(m)?;
        k.setup_us = started.elapsed().as_micros() as u64;
        Ok(k)
    }

    /// (Re)makes the memory slots when the A20 gate changed (and at the
    /// start): guest RAM is the machine's own mapping, see `memory`.
    fn map_ram(&mut self, m: &Machine) -> Result<(), EngineError> {
        let a20 = m.a20_mask() & (1 << 20) != 0;
        let rom = m.rom_map();
        let rom_size = rom.map(|r| r.size as u64);
        if self.slots > 0 && a20 == self.a20 && rom_size == self.rom_size {
            return Ok(());
        }
        if rom.is_some() && !self.readonly_mem {
            return Err(EngineError::Unsupported(
                "this host's KVM cannot map memory read-only (no KVM_CAP_READONLY_MEM), \
                 which the firmware ROM needs"
                    .into(),
            ));
        }
        let set = |slot: u32, s: memory::Slot| {
            let host = if s.rom {
                rom.map_or(std::ptr::null_mut(), |r| r.host) as u64
            } else {
                m.mem.host_base() as u64
            };
            let region = kvm_bindings::kvm_userspace_memory_region {
                slot,
                flags: if s.read_only {
                    kvm_bindings::KVM_MEM_READONLY
                } else {
                    0
                },
                guest_phys_addr: s.phys,
                memory_size: s.size,
                userspace_addr: host + s.host_offset,
            };
            // SAFETY: the region lies inside the machine's RAM mapping, or
            // the ROM's host copy (`memory::slots` keeps host_offset + size
            // within them), both page aligned and owned by the machine,
            // which outlives this engine's runs (the engine is only ever run
            // with `&mut Machine` of that machine), so the memory stays
            // valid while the guest can touch it. A size of zero deletes
            // the slot.
            unsafe { self.vm.set_user_memory_region(region) }
        };
        for slot in 0..self.slots {
            let gone = memory::Slot {
                phys: 0,
                size: 0,
                host_offset: 0,
                read_only: false,
                rom: false,
            };
            set(slot, gone).map_err(|e| host_err("KVM_SET_USER_MEMORY_REGION (delete)", e))?;
        }
        let want = memory::slots(m.mem.size() as u64, a20, rom_size);
        for (i, s) in want.iter().enumerate() {
            set(i as u32, *s).map_err(|e| {
                host_err(
                    &format!(
                        "KVM_SET_USER_MEMORY_REGION (slot {i} of {}, A20 {})",
                        want.len(),
                        if a20 { "open" } else { "closed" }
                    ),
                    e,
                )
            })?;
        }
        self.slots = want.len() as u32;
        self.a20 = a20;
        self.rom_size = rom_size;
        Ok(())
    }

    /// Finishes an instruction left half done by a port I/O or MMIO exit,
    /// so the state read next is architectural: KVM completes it on the
    /// next KVM_RUN, and with `immediate_exit` set that entry returns EINTR
    /// right after (the documented way, Documentation/virt/kvm/api.rst,
    /// "immediate_exit").
    fn complete_io(&mut self) -> Result<(), EngineError> {
        if !self.io_pending {
            return Ok(());
        }
        self.io_pending = false;
        self.vcpu.get_kvm_run().immediate_exit = 1;
        let r = self.vcpu.run().map(|_| ()).map_err(|e| e.errno());
        self.vcpu.get_kvm_run().immediate_exit = 0;
        match r {
            Err(libc::EINTR) | Err(libc::EAGAIN) | Ok(()) => Ok(()),
            Err(e) => Err(host_err(
                "KVM_RUN (completing an I/O exit)",
                std::io::Error::from_raw_os_error(e),
            )),
        }
    }

    /// KVM_SET_GUEST_DEBUG: single stepping on or off.
    fn set_debug(&mut self, single: bool) -> Result<(), EngineError> {
        use kvm_bindings::{kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP};
        let mut dbg = kvm_guest_debug::default();
        if single {
            dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
        }
        self.vcpu
            .set_guest_debug(&dbg)
            .map_err(|e| host_err("KVM_SET_GUEST_DEBUG", e))
    }

    fn host_now(&self) -> u64 {
        let t = self.epoch.elapsed().as_nanos() as i128 + self.time_offset;
        t.max(0) as u64
    }

    /// Advances virtual time to host time (never backwards).
    fn sync_time(&mut self, m: &mut Machine) {
        let t = self.host_now();
        if t > m.clock.now() {
            m.set_time(t);
        } else {
            self.time_offset += (m.clock.now() - t) as i128;
        }
    }

    /// Registers and segment state only (two ioctls): enough for the CPL
    /// and the PC, as single stepping needs after every instruction.
    fn read_regs(&self) -> Result<CpuState, EngineError> {
        let regs = self
            .vcpu
            .get_regs()
            .map_err(|e| host_err("KVM_GET_REGS", e))?;
        let sregs = self
            .vcpu
            .get_sregs()
            .map_err(|e| host_err("KVM_GET_SREGS", e))?;
        let mut s = self.last.clone().unwrap_or_else(CpuState::reset);
        state::from_kvm(&regs, &sregs, &mut s);
        Ok(s)
    }

    /// Everything: registers, segments, the modelled MSRs and the
    /// interrupt shadow.
    fn read_state(&self) -> Result<CpuState, EngineError> {
        let mut s = self.read_regs()?;
        let mut msrs = Msrs::from_entries(&[
            kvm_msr_entry {
                index: msr::SYSENTER_CS,
                ..Default::default()
            },
            kvm_msr_entry {
                index: msr::SYSENTER_ESP,
                ..Default::default()
            },
            kvm_msr_entry {
                index: msr::SYSENTER_EIP,
                ..Default::default()
            },
            kvm_msr_entry {
                index: msr::TSC,
                ..Default::default()
            },
        ])
        .map_err(|e| host_err("MSR list", format!("{e:?}")))?;
        if self.vcpu.get_msrs(&mut msrs).is_ok() {
            for e in msrs.as_slice() {
                match e.index {
                    msr::SYSENTER_CS => s.sysenter_cs = e.data as u32,
                    msr::SYSENTER_ESP => s.sysenter_esp = e.data as u32,
                    msr::SYSENTER_EIP => s.sysenter_eip = e.data as u32,
                    msr::TSC => s.tsc = e.data,
                    _ => {}
                }
            }
        }
        if let Ok(ev) = self.vcpu.get_vcpu_events() {
            s.interrupt_shadow = ev.interrupt.shadow != 0;
        }
        Ok(s)
    }

    fn inject(&mut self, vector: u8) -> Result<(), EngineError> {
        let irq = kvm_bindings::kvm_interrupt { irq: vector as u32 };
        // SAFETY: KVM_INTERRUPT takes a pointer to a kvm_interrupt on a vCPU
        // fd; both are valid for the call.
        let r = unsafe {
            libc::ioctl(
                std::os::unix::io::AsRawFd::as_raw_fd(&self.vcpu),
                KVM_INTERRUPT,
                &irq,
            )
        };
        if r != 0 {
            return Err(host_err("KVM_INTERRUPT", std::io::Error::last_os_error()));
        }
        self.injected += 1;
        Ok(())
    }

    /// Explains a stop kvm-pvm gives for what it cannot run.
    fn pvm_explain(&self, m: &Machine, what: &str) -> Option<EngineError> {
        if self.host != HostKind::Pvm {
            return None;
        }
        let s = self.read_state().ok()?;
        if std::env::var_os("RINGLAB_KVM_DEBUG").is_some() {
            eprintln!("kvm-pvm stop ({what}): {s:?}");
        }
        let why = match what {
            "shutdown" if s.cr0 & cr0::PG != 0 || paging_write_pending(m, &s) => {
                "the guest enabled 32-bit paging (CR0.PG), which this host's kvm-pvm only \
                 supports in long mode"
            }
            // A task gate taken as if it were a code segment: CS ends up
            // holding a TSS descriptor (S = 0), which no real CPU allows.
            "shutdown" if s.protected() && s.segs[1].access & access::S == 0 => {
                "kvm-pvm cannot perform hardware task switches in 32-bit protected mode \
                 (it loaded CS with a TSS descriptor and the vCPU shut down)"
            }
            "shutdown" => return None,
            _ if m.mem.read_u8(s.pc_linear() as u64) == Some(0xCF) => {
                "kvm-pvm cannot execute IRET in 32-bit protected mode without paging \
                 (KVM internal error), even within one ring"
            }
            _ => {
                "kvm-pvm could not run this guest in 32-bit protected mode without paging \
                 (KVM internal error; it fails on IRET and on ring changes there)"
            }
        };
        Some(EngineError::Unsupported(format!(
            "{why}; run it on the interpreter, or on a host with hardware virtualization \
             (kvm_intel or kvm_amd); stopped at {:04x}:{:08x} ({})",
            s.segs[1].selector,
            s.eip,
            s.mode_name()
        )))
    }
}

/// The vCPU state for an error message: where it was, the registers, the
/// segments with their caches and the control registers.
fn dump_state(s: &CpuState) -> String {
    let r = &s.regs;
    let mut out = format!(
        "  at {:04x}:{:08x} ({}, CPL {})\n  eax {:08x} ecx {:08x} edx {:08x} ebx {:08x}\n  \
         esp {:08x} ebp {:08x} esi {:08x} edi {:08x}\n  eflags {:08x} cr0 {:08x} cr2 {:08x} \
         cr3 {:08x} cr4 {:08x}\n  gdtr {:08x}/{:04x} idtr {:08x}/{:04x} tr {:04x} ldtr {:04x}\n",
        s.segs[1].selector,
        s.eip,
        s.mode_name(),
        s.cpl(),
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        s.eflags,
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.gdtr.base,
        s.gdtr.limit,
        s.idtr.base,
        s.idtr.limit,
        s.tr.selector,
        s.ldtr.selector
    );
    for (name, g) in ["es", "cs", "ss", "ds", "fs", "gs"].iter().zip(&s.segs) {
        out.push_str(&format!(
            "  {name} {:04x} base {:08x} limit {:08x} access {:04x}\n",
            g.selector, g.base, g.limit, g.access
        ));
    }
    out
}

/// Whether the instruction at CS:EIP (or just before it) is MOV CR0, r32
/// with PG set in the register: kvm-pvm shuts the vCPU down there, before
/// CR0 changes (measured: EIP on the MOV, CR0 without PG).
fn paging_write_pending(m: &Machine, s: &CpuState) -> bool {
    let pc = s.pc_linear();
    [pc, pc.wrapping_sub(3)].iter().any(|&a| {
        let b = |k: u32| m.mem.read_u8(a.wrapping_add(k) as u64);
        match (b(0), b(1), b(2)) {
            // 0F 22 /r with mod = 11 and reg = 0 (CR0): MOV CR0, r32.
            (Some(0x0F), Some(0x22), Some(modrm)) if modrm >> 6 == 3 && (modrm >> 3) & 7 == 0 => {
                s.regs[(modrm & 7) as usize] & cr0::PG != 0
            }
            _ => false,
        }
    })
}

/// The likely cause of a ring change across one stepped instruction, from
/// its opcode. The bytes are read at the linear address as if it were
/// physical, which holds without paging (and for identity-mapped kernels);
/// anything unrecognised counts as an exception.
fn cause_from_insn(m: &Machine, s: &CpuState) -> PrivCause {
    let b = |k: u32| m.mem.read_u8(s.pc_linear().wrapping_add(k) as u64);
    match (b(0), b(1)) {
        (Some(0xCC..=0xCE), _) => PrivCause::SoftwareInterrupt,
        (Some(0xCF), _) | (Some(0x66), Some(0xCF)) => PrivCause::Iret,
        (Some(0xCA | 0xCB), _) => PrivCause::FarReturn,
        (Some(0x9A), _) | (Some(0xFF), _) => PrivCause::CallGate,
        (Some(0xEA), _) => PrivCause::TaskSwitch,
        (Some(0x0F), Some(0x34)) => PrivCause::Sysenter,
        (Some(0x0F), Some(0x35)) => PrivCause::Sysexit,
        _ => PrivCause::Exception,
    }
}

/// The instruction at the PC is MOV SS, r/m or POP SS (read as
/// `cause_from_insn` does, through identity-mapped memory).
fn loads_ss(m: &Machine, s: &CpuState) -> bool {
    let b = |k: u32| m.mem.read_u8(s.pc_linear().wrapping_add(k) as u64);
    let (op, modrm) = match b(0) {
        Some(0x66) => (b(1), b(2)),
        x => (x, b(1)),
    };
    match op {
        Some(0x17) => true,
        Some(0x8E) => modrm.is_some_and(|r| (r >> 3) & 7 == 2),
        _ => false,
    }
}

/// A VM exit with its data area as a raw pointer into the vCPU's kvm_run
/// mapping, so the borrow of the vCPU ends before the exit is handled.
enum Raw {
    IoIn(u16, *mut u8, usize),
    IoOut(u16, *const u8, usize),
    MmioRead(u64, *mut u8, usize),
    MmioWrite(u64, *const u8, usize),
    Plain(Exit<'static>),
}

fn raw_of(e: VcpuExit<'_>) -> Raw {
    match e {
        VcpuExit::IoIn(port, data) => Raw::IoIn(port, data.as_mut_ptr(), data.len()),
        VcpuExit::IoOut(port, data) => Raw::IoOut(port, data.as_ptr(), data.len()),
        VcpuExit::MmioRead(addr, data) => Raw::MmioRead(addr, data.as_mut_ptr(), data.len()),
        VcpuExit::MmioWrite(addr, data) => Raw::MmioWrite(addr, data.as_ptr(), data.len()),
        VcpuExit::Hlt => Raw::Plain(Exit::Hlt),
        VcpuExit::IrqWindowOpen => Raw::Plain(Exit::IrqWindowOpen),
        VcpuExit::Shutdown => Raw::Plain(Exit::Shutdown),
        VcpuExit::Debug(arch) => Raw::Plain(Exit::Debug(arch.pc)),
        VcpuExit::FailEntry(r, _) => Raw::Plain(Exit::FailEntry(r)),
        VcpuExit::InternalError => Raw::Plain(Exit::InternalError(0)),
        VcpuExit::Intr => Raw::Plain(Exit::Intr),
        other => Raw::Plain(Exit::Other(format!("{other:?}"))),
    }
}

impl Engine for Kvm {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError> {
        m.clock.set_mode(ClockMode::HostTime);
        let start = Instant::now();
        // Breakpoints: single-step and compare the linear PC. (Hardware
        // breakpoints through KVM_GUESTDBG_USE_HW_BP worked on kvm-pvm but
        // never fired under QEMU's emulated SVM, so they are not used.)
        if !self.stepping && !limits.breakpoints.is_empty() {
            loop {
                let pc = self.read_regs()?.pc_linear();
                if limits.breakpoints.contains(&pc) && self.resume_bp != Some(pc) {
                    self.resume_bp = Some(pc);
                    return Ok(Stop::Breakpoint { addr: pc });
                }
                self.resume_bp = None;
                if let Some(t) = limits.timeout {
                    if start.elapsed() >= t {
                        return Ok(Stop::Timeout);
                    }
                }
                let s = self.step(m)?;
                if s != Stop::Stepped {
                    return Ok(s);
                }
            }
        }
        let imm = &mut self.vcpu.get_kvm_run().immediate_exit as *mut u8;
        let mut timer = timer::DeadlineTimer::new(imm).map_err(EngineError::Host)?;
        loop {
            if let Some(s) = m.stop_requested() {
                return Ok(s.to_stop());
            }
            self.map_ram(m)?;
            if let Some(t) = limits.timeout {
                if start.elapsed() >= t {
                    return Ok(Stop::Timeout);
                }
            }
            self.sync_time(m);
            // Interrupts from the shared PIC: inject when the guest can take
            // one, else ask KVM to exit when it can.
            {
                let run = self.vcpu.get_kvm_run();
                run.request_interrupt_window = 0;
                let ready = run.ready_for_interrupt_injection != 0 && run.if_flag != 0;
                if m.interrupt_pending() {
                    if ready {
                        let v = m.acknowledge_interrupt();
                        let now = m.clock.now();
                        let eip = self.vcpu.get_regs().map_or(0, |r| r.rip as u32);
                        m.trace.record(
                            m.icount(),
                            now,
                            machine::Event::Interrupt { vector: v, eip },
                        );
                        self.inject(v)?;
                    } else {
                        self.vcpu.get_kvm_run().request_interrupt_window = 1;
                    }
                }
            }
            // Return from KVM_RUN at the next device deadline or the timeout.
            let mut wait = Duration::from_millis(100);
            if let Some(d) = m.next_deadline() {
                wait = wait.min(Duration::from_nanos(d.saturating_sub(m.clock.now())));
            }
            if let Some(t) = limits.timeout {
                wait = wait.min(t.saturating_sub(start.elapsed()));
            }
            if self.stepping {
                // Re-arm before every entry: KVM keeps the trap flag it set
                // for stepping only until the guest's own EFLAGS change (an
                // INT clears TF on the way into the handler).
                self.set_debug(true)?;
            }
            timer.arm_by(Instant::now() + wait);
            self.io_pending = false;
            let raw = match self.vcpu.run() {
                Ok(e) => raw_of(e),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    Raw::Plain(Exit::Intr)
                }
                Err(e) => return Err(host_err("KVM_RUN", e)),
            };
            // SAFETY: the io union member is the valid one for an I/O exit
            // (only read then).
            let io_size = unsafe { self.vcpu.get_kvm_run().__bindgen_anon_1.io.size };
            // The slices below: each pointer and length is the data area KVM
            // described for this exit, inside the vCPU's kvm_run mapping,
            // which lives as long as the vCPU; nothing else touches it until
            // the next KVM_RUN.
            let exit = match raw {
                Raw::IoIn(port, p, n) => Exit::IoIn {
                    port,
                    size: io_size,
                    // SAFETY: p..p+n is the exit's data area in the vCPU's
                    // kvm_run mapping (see above), valid until the next KVM_RUN.
                    data: unsafe { std::slice::from_raw_parts_mut(p, n) },
                },
                Raw::IoOut(port, p, n) => Exit::IoOut {
                    port,
                    size: io_size,
                    // SAFETY: p..p+n is the exit's data area in the vCPU's
                    // kvm_run mapping (see above), valid until the next KVM_RUN.
                    data: unsafe { std::slice::from_raw_parts(p, n) },
                },
                Raw::MmioRead(addr, p, n) => Exit::MmioRead {
                    addr,
                    // SAFETY: p..p+n is the exit's data area in the vCPU's
                    // kvm_run mapping (see above), valid until the next KVM_RUN.
                    data: unsafe { std::slice::from_raw_parts_mut(p, n) },
                },
                Raw::MmioWrite(addr, p, n) => Exit::MmioWrite {
                    addr,
                    // SAFETY: p..p+n is the exit's data area in the vCPU's
                    // kvm_run mapping (see above), valid until the next KVM_RUN.
                    data: unsafe { std::slice::from_raw_parts(p, n) },
                },
                Raw::Plain(e) => e,
            };
            self.vcpu.get_kvm_run().immediate_exit = 0;
            self.sync_time(m);
            *self.exits.entry(exit.kind()).or_default() += 1;
            self.io_pending = matches!(exit.kind(), "io" | "mmio");
            if let Exit::Debug(_) = exit {
                if self.stepping {
                    return Ok(Stop::Stepped);
                }
            }
            let kind = exit.kind();
            // kvm-pvm has no 32-bit paging. Measured: a MOV CR0 setting PG
            // either shuts the vCPU down (with CR4.PSE) or is silently
            // dropped, and the guest runs on unpaged with wrong results. So
            // at the first exit that shows a page directory loaded in CR3
            // outside long mode, stop and say why. (A 32-bit guest loads CR3
            // only to page; one that never turns paging on would be stopped
            // too, which the message makes clear.)
            if self.host == HostKind::Pvm {
                if let Ok(sr) = self.vcpu.get_sregs() {
                    let long_mode = sr.efer & (1 << 10) != 0;
                    if !long_mode && (sr.cr0 & cr0::PG as u64 != 0 || sr.cr3 != 0) {
                        return Err(EngineError::Unsupported(format!(
                            "the guest loaded a page directory (CR3={:#x}) to use 32-bit paging, \
                             which this host's kvm-pvm only supports in long mode (it ignores or \
                             refuses CR0.PG); run it on the interpreter, or on a host with \
                             hardware virtualization (kvm_intel or kvm_amd)",
                            sr.cr3
                        )));
                    }
                }
            }
            match exits::handle(exit, m) {
                Action::Resume if self.stepping && self.io_pending => {
                    // Finish the port or MMIO instruction now and end the
                    // step there. Left to the next entry, kvm-pvm completes
                    // it and runs one more instruction before the debug
                    // trap (measured: OUT then MOV in one step).
                    self.complete_io()?;
                    return Ok(Stop::Stepped);
                }
                Action::Resume => {}
                Action::Stop(Stop::TripleFault) => {
                    if let Some(e) = self.pvm_explain(m, "shutdown") {
                        return Err(e);
                    }
                    return Ok(Stop::TripleFault);
                }
                Action::Stop(s) => return Ok(s),
                Action::Halted => {
                    let regs = self
                        .vcpu
                        .get_regs()
                        .map_err(|e| host_err("KVM_GET_REGS", e))?;
                    let if_ = regs.rflags as u32 & f::IF != 0;
                    if m.interrupt_pending() && if_ {
                        continue;
                    }
                    if !if_ {
                        self.last = Some(self.read_state()?);
                        return Ok(Stop::Halted);
                    }
                    // HLT with IF set: skip to the next device deadline, as
                    // every engine does.
                    if !m.warp_to_deadline() {
                        return Ok(Stop::Idle);
                    }
                    self.time_offset =
                        m.clock.now() as i128 - self.epoch.elapsed().as_nanos() as i128;
                }
                Action::Fail(why) => {
                    if kind == "internal error" {
                        if let Some(e) = self.pvm_explain(m, "internal") {
                            return Err(e);
                        }
                    }
                    let dump = self
                        .read_state()
                        .map(|s| dump_state(&s))
                        .unwrap_or_else(|e| format!("(state unreadable: {e})"));
                    return Err(EngineError::Host(format!("{why}; vCPU state:\n{dump}")));
                }
            }
        }
    }

    /// One instruction on the CPU, through KVM's single-step debug exit.
    /// As on hardware, the instruction after MOV SS or POP SS runs in the
    /// same step (the SS shadow holds the #DB, SDM Vol 3A 6.8.3).
    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError> {
        let before = self.read_regs()?;
        let injected = self.injected;
        self.set_debug(true)?;
        self.stepping = true;
        let limits = Limits {
            max_icount: None,
            timeout: Some(Duration::from_secs(5)),
            breakpoints: vec![],
        };
        let r = self.run(m, &limits);
        self.stepping = false;
        self.set_debug(false)?;
        // A debug exit after a step with nothing injected is one retired
        // instruction: the machine's count moves, so a switched run (or
        // the terminal UI) can count on KVM by stepping. A step that
        // injected an interrupt is the delivery, which the interpreter does
        // not count either.
        if r == Ok(Stop::Stepped) && self.injected == injected {
            // MOV SS and POP SS hold the trap over the next instruction:
            // that step retired two.
            let n = if loads_ss(m, &before) { 2 } else { 1 };
            self.stepped += n;
            m.retire(n);
        }
        // While stepping, ring changes are seen from CS (and EFLAGS.VM)
        // between two instructions; the cause is read from the instruction
        // that was stepped.
        if let Ok(after) = self.read_regs() {
            if after.cpl() != before.cpl() {
                let cause = if self.injected != injected {
                    PrivCause::HardwareInterrupt
                } else {
                    cause_from_insn(m, &before)
                };
                let now = m.clock.now();
                m.trace.record(
                    m.icount(),
                    now,
                    machine::Event::PrivilegeChange {
                        from: before.cpl(),
                        to: after.cpl(),
                        cause,
                        eip: before.eip,
                    },
                );
            }
        }
        r
    }

    fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        self.complete_io()?;
        self.read_state()
    }

    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError> {
        // A half-done I/O instruction would otherwise complete on top of
        // the new state at the next entry.
        self.complete_io()?;
        let base = self
            .vcpu
            .get_sregs()
            .map_err(|e| host_err("KVM_GET_SREGS", e))?;
        let (regs, mut sregs) = state::to_kvm(s, &base);
        if self.tcg_host && sregs.tr.s == 0 && matches!(sregs.tr.type_, 3 | 11) {
            // After LTR a real CPU caches TR as a busy TSS (VM entry even
            // requires it, SDM Vol 3C 26.3.1.2); QEMU's TCG keeps the
            // "available" type it read and aborts the whole VM ("invalid
            // tss type") at the next ring change through a busy one.
            // Measured in the test VM: interp -> kvm switches of the rings
            // lesson. The type is made busy again on export.
            sregs.tr.type_ &= !2;
        }
        self.vcpu
            .set_sregs(&sregs)
            .map_err(|e| host_err("KVM_SET_SREGS", e))?;
        self.vcpu
            .set_regs(&regs)
            .map_err(|e| host_err("KVM_SET_REGS", e))?;
        let msrs = Msrs::from_entries(&[
            kvm_msr_entry {
                index: msr::SYSENTER_CS,
                data: s.sysenter_cs as u64,
                ..Default::default()
            },
            kvm_msr_entry {
                index: msr::SYSENTER_ESP,
                data: s.sysenter_esp as u64,
                ..Default::default()
            },
            kvm_msr_entry {
                index: msr::SYSENTER_EIP,
                data: s.sysenter_eip as u64,
                ..Default::default()
            },
        ])
        .map_err(|e| host_err("MSR list", format!("{e:?}")))?;
        let _ = self.vcpu.set_msrs(&msrs);
        self.time_offset = m.clock.now() as i128 - self.epoch.elapsed().as_nanos() as i128;
        self.last = Some(s.clone());
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        let mut counters: Vec<(String, u64)> = self
            .exits
            .iter()
            .map(|(k, v)| (format!("exits: {k}"), *v))
            .collect();
        counters.push(machine::Counter::InterruptsInjected.entry(self.injected));
        counters.push(machine::Counter::InstructionsSingleStepped.entry(self.stepped));
        counters.push(machine::Counter::SetupTimeUs.entry(self.setup_us));
        EngineStats {
            engine: format!("kvm ({})", self.host.name()),
            // The CPU runs the guest: instructions are not counted.
            instructions: None,
            counters,
        }
    }
}
