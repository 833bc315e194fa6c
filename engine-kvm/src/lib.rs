//! ringlab's KVM engine: the same machine on the real CPU through
//! /dev/kvm. Guest RAM is the machine's own mapping; there is no in-kernel
//! PIC or PIT — the shared 8259A and 8254 in user space serve this engine
//! as they serve the others, so interrupts are injected with KVM_INTERRUPT
//! and device deadlines interrupt KVM_RUN through a timer signal. Ring
//! transitions happen in silicon: the engine sees only VM exits, and that
//! is what it reports. See ARCHITECTURE.md, "Running a machine" and "How
//! an `OUT` reaches a device".
//!
//! The files: `vm` sets the VM and its vCPU up, `memory` maps the
//! machine's RAM into it, `vcpu` is the vCPU as the engine drives it,
//! `run` the run loop and `exits` what each exit means for the machine,
//! `clock` virtual time, `timer` the deadline signal, `insn` the decoding
//! of the instruction at a stop and `pvm` the diagnosis of kvm-pvm's
//! limits. This file is the `Engine` glue.

#![deny(clippy::undocumented_unsafe_blocks)]

mod clock;
pub mod error;
pub mod exits;
pub mod host;
mod insn;
pub mod memory;
mod pvm;
mod run;
pub mod state;
pub mod timer;
mod vcpu;
mod vm;

pub use error::KvmError;

use kvm_ioctls::{VcpuFd, VmFd};
use machine::cpu::CpuState;
use machine::{ClockMode, Engine, EngineError, EngineStats, Limits, Machine, PrivCause, Stop};
use memory::Mapping;
use run::LoopState;
use std::time::{Duration, Instant};
use vcpu::Vcpu;

pub struct Kvm {
    vm: VmFd,
    vcpu: VcpuFd,
    /// The memory slots, bound to the machine the engine was created for.
    memory: Mapping,
    /// What the run loop keeps: exit counts, the clock, stepping.
    st: LoopState,
    /// Host time KVM_CREATE_VM to a ready vCPU took, in microseconds.
    setup_us: u64,
    /// Instructions run by single stepping: the only ones KVM can count.
    stepped: u64,
    /// The "hardware" under KVM is QEMU's TCG (the test VM): TR is
    /// imported with its TSS type marked available, as TCG caches it.
    tcg_host: bool,
    /// A breakpoint we stopped at, stepped over before running on.
    resume_bp: Option<u32>,
}

/// Creates the KVM engine over `m`, or says why this host cannot.
pub fn create(m: &mut Machine) -> Result<Box<dyn Engine>, EngineError> {
    Ok(Box::new(Kvm::new(m)?))
}

impl Kvm {
    /// The engine over `m`, and only `m`: KVM's memory slots map its RAM.
    pub fn new(m: &mut Machine) -> Result<Kvm, EngineError> {
        Ok(Kvm::open(m)?)
    }

    /// `new`, with the cause of a failure kept (`KvmError`).
    pub fn open(m: &mut Machine) -> Result<Kvm, KvmError> {
        let started = Instant::now();
        let host = host::detect();
        let vm::Vm {
            vm,
            vcpu,
            readonly_mem,
        } = vm::create(host, m.apic_base())?;
        let mut k = Kvm {
            vm,
            vcpu,
            memory: Mapping::new(m, readonly_mem),
            st: LoopState::new(host, m.clock.now()),
            setup_us: 0,
            stepped: 0,
            tcg_host: host::hypervisor_signature().as_deref() == Some("TCGTCGTCGTCG"),
            resume_bp: None,
        };
        k.memory.update(&k.vm, m)?;
        k.setup_us = started.elapsed().as_micros() as u64;
        Ok(k)
    }

    fn read_regs(&self) -> Result<CpuState, KvmError> {
        vcpu::read_regs(&self.vcpu, self.st.last.as_ref())
    }

    /// The run loop proper (`run::run`) over this engine's vCPU and slots.
    fn run_loop(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, KvmError> {
        let Kvm {
            vm,
            vcpu,
            memory,
            st,
            ..
        } = self;
        run::run(vcpu, st, m, limits, |m| memory.update(vm, m))
    }

    fn step_inner(&mut self, m: &mut Machine) -> Result<Stop, KvmError> {
        self.memory.check(m)?;
        let before = self.read_regs()?;
        let injected = self.st.injected;
        self.vcpu.set_single_step(true)?;
        self.st.stepping = true;
        let limits = Limits {
            max_icount: None,
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            breakpoints: vec![],
        };
        m.clock.set_mode(ClockMode::HostTime);
        let r = self.run_loop(m, &limits);
        self.st.stepping = false;
        self.vcpu.set_single_step(false)?;
        // A debug exit after a step with nothing injected is one retired
        // instruction: the machine's count moves, so a switched run (or
        // the terminal UI) can count on KVM by stepping. A step that
        // injected an interrupt is the delivery, which the interpreter does
        // not count either.
        if matches!(r, Ok(Stop::Stepped)) && self.st.injected == injected {
            // MOV SS and POP SS hold the trap over the next instruction:
            // that step retired two.
            let n = if insn::loads_ss(m, &before) { 2 } else { 1 };
            self.stepped += n;
            m.retire(n);
        }
        // While stepping, ring changes are seen from CS (and EFLAGS.VM)
        // between two instructions; the cause is read from the instruction
        // that was stepped.
        let after = match self.read_regs() {
            Ok(after) => after,
            // The run's own error, if it failed, says more.
            Err(e) => return r.and(Err(e)),
        };
        if after.cpl() != before.cpl() {
            let cause = if self.st.injected != injected {
                PrivCause::HardwareInterrupt
            } else {
                insn::ring_change_cause(m, &before)
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
                    eax: before.regs[machine::cpu::EAX],
                },
            );
        }
        r
    }
}

impl Engine for Kvm {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn run(&mut self, m: &mut Machine, limits: &Limits) -> Result<Stop, EngineError> {
        self.memory.check(m)?;
        m.clock.set_mode(ClockMode::HostTime);
        // Breakpoints: single-step and compare the linear PC. (Hardware
        // breakpoints through KVM_GUESTDBG_USE_HW_BP worked on kvm-pvm but
        // never fired under QEMU's emulated SVM, so they are not used.)
        if !limits.breakpoints.is_empty() {
            loop {
                let pc = self.read_regs()?.pc_linear();
                if limits.breakpoints.contains(&pc) && self.resume_bp != Some(pc) {
                    self.resume_bp = Some(pc);
                    return Ok(Stop::Breakpoint { addr: pc });
                }
                self.resume_bp = None;
                if limits.expired() {
                    return Ok(Stop::Timeout);
                }
                let s = self.step(m)?;
                if s != Stop::Stepped {
                    return Ok(s);
                }
            }
        }
        Ok(self.run_loop(m, limits)?)
    }

    /// One instruction on the CPU, through KVM's single-step debug exit.
    /// As on hardware, the instruction after MOV SS or POP SS runs in the
    /// same step (the SS shadow holds the #DB, SDM Vol 3A 6.8.3).
    fn step(&mut self, m: &mut Machine) -> Result<Stop, EngineError> {
        Ok(self.step_inner(m)?)
    }

    fn cpu_state(&mut self) -> Result<CpuState, EngineError> {
        run::complete_io(&mut self.vcpu, &mut self.st)?;
        Ok(vcpu::read_state(&self.vcpu, self.st.last.as_ref())?)
    }

    fn set_cpu_state(&mut self, m: &mut Machine, s: &CpuState) -> Result<(), EngineError> {
        self.memory.check(m)?;
        // A half-done I/O instruction would otherwise complete on top of
        // the new state at the next entry.
        run::complete_io(&mut self.vcpu, &mut self.st)?;
        vcpu::write_state(&self.vcpu, s, self.tcg_host)?;
        self.st.clock.set(m.clock.now());
        self.st.last = Some(s.clone());
        Ok(())
    }

    fn stats(&self) -> EngineStats {
        let mut counters: Vec<(String, u64)> = self
            .st
            .exits
            .iter()
            .map(|(k, v)| (format!("exits: {k}"), *v))
            .collect();
        counters.push(machine::Counter::InterruptsInjected.entry(self.st.injected));
        counters.push(machine::Counter::InstructionsSingleStepped.entry(self.stepped));
        counters.push(machine::Counter::SetupTimeUs.entry(self.setup_us));
        EngineStats {
            engine: format!("kvm ({})", self.st.host.name()),
            // The CPU runs the guest: instructions are not counted.
            instructions: None,
            counters,
        }
    }
}
