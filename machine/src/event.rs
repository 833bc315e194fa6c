//! What an engine observed, as a bounded trace with counters.
//!
//! Each engine records what it can actually see: the interpreter sees every
//! privilege change and every sensitive instruction; the translator sees the
//! blocks it translated and the instructions it rewrote into callouts; KVM
//! sees only VM exits. That difference is the lesson, so the events are the
//! same types for every engine and the counters are printed side by side.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;

/// Why the privilege level changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivCause {
    /// Software interrupt (INT n, INT3, INTO).
    SoftwareInterrupt,
    /// An exception delivered through the IDT.
    Exception,
    /// An external (hardware) interrupt.
    HardwareInterrupt,
    /// IRET.
    Iret,
    /// Far CALL through a call gate.
    CallGate,
    /// Far RET to an outer ring.
    FarReturn,
    /// Far JMP (to a task or conforming code) or a task switch.
    TaskSwitch,
    Sysenter,
    Sysexit,
    /// Entering or leaving protected mode (MOV CR0), or a state import.
    ModeSwitch,
}

/// How an engine handled a sensitive or privileged instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// Executed by the interpreter in software.
    Interpreted,
    /// Rewritten by the translator into a callout.
    Callout,
    /// Ran on the CPU and came back as a VM exit.
    VmExit,
    /// Trapped in deprivileged mode and emulated (trap-and-emulate).
    TrapAndEmulate,
    /// Ran deprivileged and silently did the wrong thing (the Popek and
    /// Goldberg failure).
    SilentlyWrong,
}

impl Handling {
    /// The name printed in tables and written to JSON ("callout").
    pub fn name(self) -> &'static str {
        match self {
            Handling::Interpreted => "interpreted",
            Handling::Callout => "callout",
            Handling::VmExit => "vm_exit",
            Handling::TrapAndEmulate => "trap_and_emulate",
            Handling::SilentlyWrong => "silently_wrong",
        }
    }
}

impl std::fmt::Display for Handling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Tables list handlings alphabetically, by name.
impl Ord for Handling {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Handling {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Why a KVM vCPU came back to user space (KVM_RUN's `exit_reason`, with
/// what identifies the access). Displayed and written to JSON as one
/// string, "io out 0x3f8", "mmio write 0xfee000b0 (local APIC EOI)".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VmExit {
    IoIn {
        port: u16,
    },
    IoOut {
        port: u16,
    },
    /// An access to a physical address with no memory slot: a device
    /// register (`register` names the device and the register when the
    /// device names its registers).
    Mmio {
        write: bool,
        addr: u64,
        register: Option<(&'static str, &'static str)>,
    },
    Hlt,
    IrqWindow,
    /// KVM_RUN interrupted by the host timer that bounds a run.
    Timer,
    Shutdown,
    /// Single step or a hardware breakpoint at this linear address.
    Debug {
        pc: u64,
    },
    FailEntry {
        reason: u64,
    },
    InternalError {
        suberror: u32,
    },
    /// Any other exit reason, by its KVM_EXIT_* name.
    Other {
        name: &'static str,
    },
}

impl std::fmt::Display for VmExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            VmExit::IoIn { port } => write!(f, "io in {port:#x}"),
            VmExit::IoOut { port } => write!(f, "io out {port:#x}"),
            VmExit::Mmio {
                write,
                addr,
                register,
            } => {
                let rw = if write { "write" } else { "read" };
                match register {
                    Some((d, r)) => write!(f, "mmio {rw} {addr:#x} ({d} {r})"),
                    None => write!(f, "mmio {rw} {addr:#x}"),
                }
            }
            VmExit::Hlt => f.write_str("hlt"),
            VmExit::IrqWindow => f.write_str("irq window"),
            VmExit::Timer => f.write_str("timer"),
            VmExit::Shutdown => f.write_str("shutdown"),
            VmExit::Debug { pc } => write!(f, "debug at {pc:#x}"),
            VmExit::FailEntry { reason } => write!(f, "fail entry {reason:#x}"),
            VmExit::InternalError { suberror } => write!(f, "internal error {suberror}"),
            VmExit::Other { name } => f.write_str(name),
        }
    }
}

impl Serialize for VmExit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Guest addresses (EIP) in the JSON trace: a hex string, "0x001000b3",
/// as ringlab prints addresses everywhere else (JSON has no hex numbers).
mod hex32 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#010x}"))
    }
}

/// One observation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    PrivilegeChange {
        from: u8,
        to: u8,
        cause: PrivCause,
        #[serde(with = "hex32")]
        eip: u32,
        /// EAX as the ring changed (unchanged by INT): for a system call
        /// through INT n, the call's number (xv6, Linux's INT 0x80).
        #[serde(with = "hex32")]
        eax: u32,
    },
    Exception {
        vector: u8,
        error_code: Option<u32>,
        #[serde(with = "hex32")]
        eip: u32,
    },
    Interrupt {
        vector: u8,
        #[serde(with = "hex32")]
        eip: u32,
    },
    PortIo {
        port: u16,
        size: u8,
        write: bool,
        value: u32,
    },
    /// A sensitive instruction (mnemonic, e.g. "popf") at `eip` with `cpl`.
    Sensitive {
        insn: Cow<'static, str>,
        cpl: u8,
        #[serde(with = "hex32")]
        eip: u32,
        how: Handling,
    },
    VmExit {
        reason: VmExit,
    },
    BlockTranslated {
        #[serde(with = "hex32")]
        eip: u32,
        insns: u32,
        bytes: u32,
    },
    /// An instruction the engine does not implement (it raises #UD).
    Unimplemented {
        #[serde(with = "hex32")]
        eip: u32,
        bytes: Vec<u8>,
    },
    /// The engine changed (a run moved from one engine to another).
    EngineSwitch {
        from: String,
        to: String,
    },
    /// A device did something the guest cannot see in its registers and a
    /// user should know about (a refused APIC relocation).
    DeviceNote {
        device: &'static str,
        note: Cow<'static, str>,
    },
}

/// What the guest did, counted from the events as they are recorded
/// (`--stats`): on KVM only what it sees (interrupts it injects; no
/// system calls or exceptions, which the CPU delivers without an exit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    /// Software interrupts from ring 3 that entered an inner ring: system
    /// calls, for the OSes that make them with INT n (xv6, Linux's INT
    /// 0x80).
    pub system_calls: u64,
    /// External interrupts delivered, by vector.
    pub interrupts: [u64; 256],
    /// Exceptions delivered, by vector (14: page faults).
    pub exceptions: [u64; 256],
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            system_calls: 0,
            interrupts: [0; 256],
            exceptions: [0; 256],
        }
    }
}

/// Event kinds, for counters and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PrivilegeChange,
    Exception,
    Interrupt,
    PortIo,
    Sensitive,
    VmExit,
    BlockTranslated,
    Unimplemented,
    EngineSwitch,
    DeviceNote,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::PrivilegeChange,
        EventKind::Exception,
        EventKind::Interrupt,
        EventKind::PortIo,
        EventKind::Sensitive,
        EventKind::VmExit,
        EventKind::BlockTranslated,
        EventKind::Unimplemented,
        EventKind::EngineSwitch,
        EventKind::DeviceNote,
    ];
    pub fn name(self) -> &'static str {
        match self {
            EventKind::PrivilegeChange => "privilege_change",
            EventKind::Exception => "exception",
            EventKind::Interrupt => "interrupt",
            EventKind::PortIo => "port_io",
            EventKind::Sensitive => "sensitive",
            EventKind::VmExit => "vm_exit",
            EventKind::BlockTranslated => "block_translated",
            EventKind::Unimplemented => "unimplemented",
            EventKind::EngineSwitch => "engine_switch",
            EventKind::DeviceNote => "device_note",
        }
    }
    /// How `--stats` names a count of these events.
    pub fn plural(self) -> &'static str {
        match self {
            EventKind::PrivilegeChange => "privilege changes",
            EventKind::Exception => "exceptions",
            EventKind::Interrupt => "interrupts",
            EventKind::PortIo => "port accesses",
            EventKind::Sensitive => "sensitive instructions",
            EventKind::VmExit => "vm exits",
            EventKind::BlockTranslated => "blocks translated",
            EventKind::Unimplemented => "unimplemented instructions",
            EventKind::EngineSwitch => "engine switches",
            EventKind::DeviceNote => "device notes",
        }
    }

    /// Bit for an [`EventMask`].
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::PrivilegeChange { .. } => EventKind::PrivilegeChange,
            Event::Exception { .. } => EventKind::Exception,
            Event::Interrupt { .. } => EventKind::Interrupt,
            Event::PortIo { .. } => EventKind::PortIo,
            Event::Sensitive { .. } => EventKind::Sensitive,
            Event::VmExit { .. } => EventKind::VmExit,
            Event::BlockTranslated { .. } => EventKind::BlockTranslated,
            Event::Unimplemented { .. } => EventKind::Unimplemented,
            Event::DeviceNote { .. } => EventKind::DeviceNote,
            Event::EngineSwitch { .. } => EventKind::EngineSwitch,
        }
    }
}

/// A set of event kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventMask(pub u32);

impl EventMask {
    pub const NONE: EventMask = EventMask(0);
    pub fn with(self, k: EventKind) -> EventMask {
        EventMask(self.0 | k.bit())
    }
    pub fn contains(self, k: EventKind) -> bool {
        self.0 & k.bit() != 0
    }
}

/// An event stamped with the instruction count and virtual time it happened at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Instructions retired before the event (the machine-wide count).
    pub icount: u64,
    /// Virtual nanoseconds.
    pub time_ns: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// Slots of `Trace::sensitive_memo` (a power of two).
const SENSITIVE_MEMO: usize = 64;

/// Default number of records kept in memory.
pub const DEFAULT_TRACE_CAPACITY: usize = 4096;

/// A bounded trace: the last `capacity` records, counters of everything ever
/// recorded, and optionally every record streamed to a JSON-lines sink.
pub struct Trace {
    records: VecDeque<Record>,
    capacity: usize,
    counts: [u64; EventKind::ALL.len()],
    /// Sensitive instructions by (mnemonic, handling), in the order first
    /// seen: a handful of entries, searched by the mnemonic's address
    /// first (a kernel records one on every spinlock: a map's string
    /// comparisons were 10% of a translated run of xv6's usertests).
    sensitive: Vec<((Cow<'static, str>, Handling), u64)>,
    /// Where in `sensitive` an entry was last found (index + 1; 0: none)
    /// for a mnemonic's (address, length) and handling, by a hash of the
    /// address and handling: a translated
    /// xv6 records some 20 million PUSHFs, CLIs and STIs a second of its
    /// run, and the search was most of the recording's cost.
    sensitive_memo: [((usize, u32, Handling), u32); SENSITIVE_MEMO],
    /// VM exits by reason.
    exits: std::collections::HashMap<VmExit, u64>,
    /// What the guest did, by vector (see [`Activity`]).
    activity: Activity,
    /// Which kinds are recorded at all (counters always count). Port I/O is
    /// off by default: a polling guest produces millions.
    enabled: EventMask,
    sink: Option<Box<dyn Write>>,
    sink_error: Option<std::io::Error>,
    /// Kinds whose recording should make the engine stop (stepping UI).
    stop_on: EventMask,
    stop_hit: bool,
    total: u64,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("total", &self.total)
            .field("kept", &self.records.len())
            .finish()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new(DEFAULT_TRACE_CAPACITY)
    }
}

impl Trace {
    pub fn new(capacity: usize) -> Trace {
        let mut enabled = EventMask::NONE;
        // Port accesses and block translations are only counted unless
        // asked for: they would crowd the other events out of the ring.
        for k in EventKind::ALL {
            if k != EventKind::PortIo && k != EventKind::BlockTranslated {
                enabled = enabled.with(k);
            }
        }
        Trace {
            records: VecDeque::new(),
            capacity: capacity.max(1),
            counts: [0; EventKind::ALL.len()],
            sensitive: Default::default(),
            sensitive_memo: [((0, 0, Handling::Interpreted), 0); SENSITIVE_MEMO],
            exits: Default::default(),
            activity: Activity::default(),
            enabled,
            sink: None,
            sink_error: None,
            stop_on: EventMask::NONE,
            stop_hit: false,
            total: 0,
        }
    }

    /// Streams every recorded event, as one JSON object per line, to `w`.
    pub fn set_sink(&mut self, w: Box<dyn Write>) {
        self.sink = Some(w);
    }

    /// Chooses which kinds are recorded (counters count every kind).
    pub fn set_enabled(&mut self, mask: EventMask) {
        self.enabled = mask;
    }

    pub fn enabled(&self, k: EventKind) -> bool {
        self.enabled.contains(k)
    }

    /// Asks engines to stop after an event of one of these kinds.
    pub fn set_stop_on(&mut self, mask: EventMask) {
        self.stop_on = mask;
        self.stop_hit = false;
    }

    /// True (once) when an event in the stop-on set was recorded; engines
    /// check it at instruction boundaries and return `Stop::Event`.
    pub fn take_stop_hit(&mut self) -> bool {
        std::mem::take(&mut self.stop_hit)
    }

    #[inline]
    pub fn stop_pending(&self) -> bool {
        self.stop_hit
    }

    /// Records an event at instruction count `icount` and time `time_ns`.
    pub fn record(&mut self, icount: u64, time_ns: u64, event: Event) {
        let k = event.kind();
        self.counts[k as usize] += 1;
        self.total += 1;
        match &event {
            Event::Sensitive { insn, how, .. } => {
                // The memo is keyed by the mnemonic's address and length
                // (the same mnemonic may be two static strings, from two
                // crates) and the handling: an open-addressed table.
                let key = (insn.as_ptr() as usize, insn.len() as u32, *how);
                let mut slot = ((key.0 ^ ((*how as usize) << 48))
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    >> (64 - SENSITIVE_MEMO.trailing_zeros()))
                    & (SENSITIVE_MEMO - 1);
                let mut free = None;
                let mut found = false;
                for _ in 0..SENSITIVE_MEMO {
                    let (k, i) = self.sensitive_memo[slot];
                    if i == 0 {
                        free = Some(slot);
                        break;
                    }
                    if k == key {
                        self.sensitive[i as usize - 1].1 += 1;
                        found = true;
                        break;
                    }
                    slot = (slot + 1) & (SENSITIVE_MEMO - 1);
                }
                if !found {
                    let at = self
                        .sensitive
                        .iter()
                        .position(|((i, h), _)| h == how && i == insn);
                    let i = at.unwrap_or_else(|| {
                        self.sensitive.push(((insn.clone(), *how), 0));
                        self.sensitive.len() - 1
                    });
                    self.sensitive[i].1 += 1;
                    // Only a borrowed (static) mnemonic keeps its address.
                    if let (Some(slot), Cow::Borrowed(_)) = (free, insn) {
                        self.sensitive_memo[slot] = (key, i as u32 + 1);
                    }
                }
            }
            Event::VmExit { reason } => *self.exits.entry(*reason).or_default() += 1,
            Event::Interrupt { vector, .. } => self.activity.interrupts[*vector as usize] += 1,
            Event::Exception { vector, .. } => self.activity.exceptions[*vector as usize] += 1,
            Event::PrivilegeChange {
                from: 3,
                cause: PrivCause::SoftwareInterrupt,
                ..
            } => self.activity.system_calls += 1,
            _ => {}
        }
        if self.stop_on.contains(k) {
            self.stop_hit = true;
        }
        if !self.enabled.contains(k) {
            return;
        }
        let rec = Record {
            icount,
            time_ns,
            event,
        };
        if let Some(w) = &mut self.sink {
            let line = serde_json::to_string(&rec).expect("events serialize");
            if let Err(e) = writeln!(w, "{line}") {
                self.sink_error.get_or_insert(e);
                self.sink = None;
            }
        }
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(rec);
    }

    /// Flushes the sink; reports the first write error, if any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(w) = &mut self.sink {
            w.flush()?;
        }
        match self.sink_error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The records still held, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> + ExactSizeIterator {
        self.records.iter()
    }

    /// Whether each event of kind `k` must go through `record` one by one:
    /// it is kept (in the records or the sink) or stops the engine. When
    /// not, an engine may count such events itself and hand the counts
    /// over with `add_sensitive`.
    pub fn wants_each(&self, k: EventKind) -> bool {
        self.enabled.contains(k) || self.stop_on.contains(k)
    }

    /// Counts `n` sensitive instructions `insn` handled `how` that were not
    /// recorded one by one (`wants_each` said none was wanted): the
    /// counters end as if each had been recorded.
    pub fn add_sensitive(&mut self, insn: &'static str, how: Handling, n: u64) {
        if n == 0 {
            return;
        }
        let k = EventKind::Sensitive;
        self.counts[k as usize] += n;
        self.total += n;
        match self
            .sensitive
            .iter_mut()
            .find(|((i, h), _)| *h == how && i == insn)
        {
            Some((_, c)) => *c += n,
            None => self.sensitive.push(((Cow::Borrowed(insn), how), n)),
        }
    }

    /// How many events of `k` were recorded since the start.
    pub fn count(&self, k: EventKind) -> u64 {
        self.counts[k as usize]
    }

    /// Total events recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Sensitive instructions by (mnemonic, how handled), with counts.
    pub fn sensitive_counts(
        &self,
    ) -> std::collections::BTreeMap<(Cow<'static, str>, Handling), u64> {
        self.sensitive.iter().cloned().collect()
    }

    /// What the guest did: system calls, exceptions and interrupts by
    /// vector.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    /// VM exits by reason, with counts.
    /// Sorted by the reason as printed ("hlt", "io in 0x60", ...).
    pub fn exit_counts(&self) -> Vec<(VmExit, u64)> {
        let mut v: Vec<(String, VmExit, u64)> = self
            .exits
            .iter()
            .map(|(r, n)| (r.to_string(), *r, *n))
            .collect();
        v.sort();
        v.into_iter().map(|(_, r, n)| (r, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_counters_and_jsonl() {
        #[derive(Clone, Default)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let mut t = Trace::new(2);
        t.set_sink(Box::new(out.clone()));
        for i in 0..3 {
            t.record(
                i,
                i * 10,
                Event::Interrupt {
                    vector: 0x20,
                    eip: 0x1000,
                },
            );
        }
        t.record(
            3,
            30,
            Event::PortIo {
                port: 0x3F8,
                size: 1,
                write: true,
                value: 0x41,
            },
        );
        t.record(
            4,
            40,
            Event::PrivilegeChange {
                from: 3,
                to: 0,
                cause: PrivCause::SoftwareInterrupt,
                eip: 0x40_0010,
                eax: 7,
            },
        );
        assert_eq!(t.count(EventKind::Interrupt), 3);
        assert_eq!(t.count(EventKind::PortIo), 1);
        assert_eq!(t.records().len(), 2);
        assert_eq!(t.records().next().unwrap().icount, 2);
        t.finish().unwrap();
        let text = String::from_utf8(out.0.borrow().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            4,
            "port I/O is counted but not recorded by default"
        );
        assert_eq!(
            lines[3],
            r#"{"icount":4,"time_ns":40,"kind":"privilege_change","from":3,"to":0,"cause":"software_interrupt","eip":"0x00400010","eax":"0x00000007"}"#
        );
    }

    #[test]
    fn addresses_are_written_in_hex() {
        let e = Event::Exception {
            vector: 14,
            error_code: Some(6),
            eip: 0x0010_00b3,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"exception","vector":14,"error_code":6,"eip":"0x001000b3"}"#
        );
    }

    #[test]
    fn vm_exits_are_one_string_naming_the_register() {
        let e = Event::VmExit {
            reason: VmExit::Mmio {
                write: true,
                addr: 0xFEE0_00B0,
                register: Some(("local APIC", "EOI")),
            },
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"kind":"vm_exit","reason":"mmio write 0xfee000b0 (local APIC EOI)"}"#
        );
        let mut t = Trace::default();
        for port in [0x3F8, 0x60, 0x3F8] {
            t.record(
                0,
                0,
                Event::VmExit {
                    reason: VmExit::IoOut { port },
                },
            );
        }
        t.record(
            0,
            0,
            Event::VmExit {
                reason: VmExit::Hlt,
            },
        );
        let counts: Vec<(String, u64)> = t
            .exit_counts()
            .into_iter()
            .map(|(r, n)| (r.to_string(), n))
            .collect();
        assert_eq!(
            counts,
            [
                ("hlt".into(), 1),
                ("io out 0x3f8".into(), 2),
                ("io out 0x60".into(), 1)
            ]
        );
    }

    /// Sensitive instructions are counted by mnemonic and handling,
    /// whatever string holds the mnemonic (two statics with the same text,
    /// an owned one), through the memo or past it (more mnemonics than
    /// its slots).
    #[test]
    fn sensitive_counts_by_text_and_handling() {
        let mut t = Trace::default();
        let sens = |insn: Cow<'static, str>, how| Event::Sensitive {
            insn,
            cpl: 0,
            eip: 0,
            how,
        };
        let a: &'static str = "pushf";
        let b: &'static str = &"xpushf"[1..];
        assert_ne!(a.as_ptr(), b.as_ptr());
        let names: Vec<&'static str> = (0..100)
            .map(|i| &*Box::leak(format!("insn{i}").into_boxed_str()))
            .collect();
        for round in 0..3 {
            t.record(0, 0, sens(Cow::Borrowed(a), Handling::Callout));
            t.record(0, 0, sens(Cow::Borrowed(b), Handling::Callout));
            t.record(0, 0, sens(Cow::Owned("pushf".into()), Handling::Callout));
            t.record(0, 0, sens(Cow::Borrowed(a), Handling::Interpreted));
            for n in &names {
                t.record(0, 0, sens(Cow::Borrowed(n), Handling::VmExit));
            }
            let c = t.sensitive_counts();
            let r = round + 1;
            assert_eq!(c[&(Cow::Borrowed("pushf"), Handling::Callout)], 3 * r);
            assert_eq!(c[&(Cow::Borrowed("pushf"), Handling::Interpreted)], r);
            assert_eq!(c.len(), 102);
            assert!(names
                .iter()
                .all(|n| c[&(Cow::Borrowed(*n), Handling::VmExit)] == r));
        }
    }

    #[test]
    fn stop_on_kind() {
        let mut t = Trace::default();
        t.set_stop_on(EventMask::NONE.with(EventKind::Exception));
        t.record(
            0,
            0,
            Event::Interrupt {
                vector: 0x20,
                eip: 0,
            },
        );
        assert!(!t.take_stop_hit());
        t.record(
            1,
            0,
            Event::Exception {
                vector: 13,
                error_code: Some(0),
                eip: 0,
            },
        );
        assert!(t.take_stop_hit());
        assert!(!t.take_stop_hit());
    }
}
