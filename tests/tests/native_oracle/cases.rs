//! Handwritten cases of the native oracle: one sequence per kind of end
//! (the signal-to-vector mapping), a check that the comparison can fail,
//! and the divergences found so far, kept fixed (RELIABILITY.md).

use super::{diff, for_engines, gen, host_vendor, layout, run_emu, run_native, spawn, Case};
use crate::gen::Prog;

/// Handwritten sequences, one per end, give the same vector on the CPU
/// and both engines: the signal-to-vector mapping and the emulator's IDT
/// stubs agree on what each is.
#[test]
fn each_fault_is_seen_the_same_way() {
    let Some(mut n) = spawn() else { return };
    use gen::Item;
    let one = |bytes: &[u8]| Item {
        bytes: bytes.to_vec(),
        reads: 0,
        writes: 0,
        undef: 0,
        skip: 0,
    };
    #[rustfmt::skip]
    let cases: [(&[u8], u8); 9] = [
        (&[0x31, 0xC9, 0xF7, 0xF1], 0),               // xor ecx,ecx; div ecx
        (&[0x0F, 0x0B], 6),                           // ud2
        (&[0xF4], 13),                                // hlt
        (&[0x8B, 0x85, 0x00, 0x30, 0x00, 0x00], 14),  // mov eax,[ebp+0x3000]
        (&[0x89, 0x85, 0x00, 0x20, 0x00, 0x00], 14),  // mov [ebp+0x2000],eax (read-only)
        (&[0xB8, 0x00, 0x00, 0x00, 0x80, 0x62, 0x45, 0x00], 5), // mov eax,0x80000000; bound eax,[ebp]
        (&[0xB8, 0xFF, 0xFF, 0xFF, 0x7F, 0x40, 0xCE], 4), // mov eax,0x7fffffff; inc eax; into
        (&[0x68, 0x02, 0x00, 0x04, 0x00, 0x9D, 0x8B, 0x45, 0x01], 17), // push 0x40002; popfd; mov eax,[ebp+1]
        (&[0x90], 3),                                 // nop; int3
    ];
    let mut base = Case::new(1);
    base.start.gpr[5] = layout::DATA;
    for (bytes, want) in cases {
        let case = base.with_prog(Prog {
            items: vec![one(bytes)],
        });
        let cpu = run_native(&mut n, &case).unwrap();
        assert_eq!(cpu.how, Ok(want), "cpu on {bytes:02x?}");
        if want == 14 {
            assert!(
                matches!(cpu.cr2, Some(a) if a == layout::DATA + 0x3000 || a == layout::RODATA),
                "cr2 {:x?}",
                cpu.cr2
            );
        }
        for bt in [false, true] {
            let e = run_emu(bt, &for_engines(&case, &cpu));
            assert_eq!(e.how, Ok(want), "bt={bt} on {bytes:02x?}");
            assert_eq!(
                diff(&case, &cpu, &e),
                Vec::<String>::new(),
                "bt={bt} on {bytes:02x?}"
            );
        }
    }
}

/// The comparison can fail: the same program run by an engine from an
/// EAX one bit off is reported, in EAX and in the memory it stored.
#[test]
fn a_different_start_is_a_divergence() {
    let Some(mut n) = spawn() else { return };
    let mut item = gen::Item {
        bytes: vec![0x89, 0x45, 0x00], // mov [ebp], eax
        reads: 0,
        writes: 0,
        undef: 0,
        skip: 0,
    };
    item.bytes.extend([0x90]);
    let mut case = Case::new(7).with_prog(Prog { items: vec![item] });
    case.start.gpr[5] = layout::DATA;
    let cpu = run_native(&mut n, &case).unwrap();
    let same = run_emu(false, &for_engines(&case, &cpu));
    assert_eq!(diff(&case, &cpu, &same), Vec::<String>::new());
    let mut other = for_engines(&case, &cpu);
    other.start.gpr[0] ^= 1;
    let d = diff(&case, &cpu, &run_emu(false, &other));
    assert!(
        d.iter().any(|l| l.starts_with("eax")) && d.iter().any(|l| l.starts_with("memory")),
        "{d:?}"
    );
}

/// One divergence the oracle found, kept as a fixed case: its code, the
/// start it needs, and what the engines must do there (which is what the
/// CPU did). On a host with the native oracle the CPU runs it too and
/// all three must agree; without it the engines' expectation still holds.
struct Found {
    what: &'static str,
    code: &'static [u8],
    /// (register, value) set at the start.
    regs: &'static [(usize, u32)],
    /// EFLAGS.AC at the start.
    ac: bool,
    vector: u8,
    cr2: Option<u32>,
    /// (register, value) expected at the end.
    want: &'static [(usize, u32)],
}

#[rustfmt::skip]
const FOUND: &[Found] = &[
    Found {
        what: "a read-modify-write of a dword from a read-only page into an unmapped one faults on the read-only page",
        code: &[0x01, 0x85, 0xFE, 0x2F, 0x00, 0x00], // add [ebp+0x2ffe], eax
        regs: &[], ac: false, vector: 14, cr2: Some(0x20_2FFE), want: &[],
    },
    Found {
        what: "BTR on memory is a read-modify-write of the dword holding the bit",
        code: &[0x0F, 0xBA, 0xB5, 0xFF, 0x2F, 0x00, 0x00, 0x1C], // btr dword [ebp+0x2fff], 28
        regs: &[], ac: false, vector: 14, cr2: Some(0x20_2FFF), want: &[],
    },
    Found {
        what: "SHRD by a count of 0 still writes its memory operand",
        code: &[0x0F, 0xAC, 0x9D, 0x00, 0x20, 0x00, 0x00, 0x20], // shrd [ebp+0x2000], ebx, 32
        regs: &[], ac: false, vector: 14, cr2: Some(0x20_2000), want: &[],
    },
    Found {
        what: "a misaligned read-modify-write with AC set is #AC",
        code: &[0xFF, 0x85, 0x01, 0x00, 0x00, 0x00], // inc dword [ebp+1]
        regs: &[], ac: true, vector: 17, cr2: None, want: &[],
    },
    Found {
        what: "BTC with a register bit offset: #AC on the misaligned dword it addresses",
        code: &[0x0F, 0xBB, 0x9D, 0x11, 0x00, 0x00, 0x00], // btc [ebp+0x11], ebx
        regs: &[(3, 0x3F)], ac: true, vector: 17, cr2: None, want: &[],
    },
    Found {
        what: "CMPXCHG8B needs 8-byte alignment with AC set",
        code: &[0x0F, 0xC7, 0x8D, 0x04, 0x00, 0x00, 0x00], // cmpxchg8b [ebp+4]
        regs: &[], ac: true, vector: 17, cr2: None, want: &[],
    },
    Found {
        what: "XADD EBX, EBX leaves the sum",
        code: &[0x0F, 0xC1, 0xDB], // xadd ebx, ebx
        regs: &[(3, 0x4000_0001)], ac: false, vector: 3, cr2: None, want: &[(3, 0x8000_0002)],
    },
    Found {
        what: "CMPSD with both operands unmapped faults on [EDI] first",
        code: &[0xA7], // cmpsd
        regs: &[(6, 0x8000_0F83), (7, 0x8000_016C)], ac: false, vector: 14, cr2: Some(0x8000_016C), want: &[],
    },
    Found {
        what: "BOUND below the lower bound is #BR before the unmapped upper bound is read",
        code: &[0x62, 0xB5, 0xFC, 0x2F, 0x00, 0x00], // bound esi, [ebp+0x2ffc]
        regs: &[(6, 0x8000_0000)], ac: false, vector: 5, cr2: None, want: &[],
    },
    Found {
        what: "PUSH DS with a 32-bit operand writes only the selector's word",
        // push 0xaaaabbbb; pop eax; push ds; pop eax
        code: &[0x68, 0xBB, 0xBB, 0xAA, 0xAA, 0x58, 0x1E, 0x58],
        regs: &[], ac: false, vector: 3, cr2: None, want: &[(0, 0xAAAA_002B)],
    },
];

/// Found cases where CPUs differ by vendor and the engines do as Intel's
/// CPUs (and the SDM's pseudocode) do: (what, what other CPUs do). On a
/// host whose CPU is not Intel's only the engines' side is checked.
const INTEL_ONLY: &[(&str, &str)] = &[
    (
        "BOUND below the lower bound is #BR before the unmapped upper bound is read",
        "an AMD CPU reads both bounds before it compares (#PF on the upper one)",
    ),
    (
        "PUSH DS with a 32-bit operand writes only the selector's word",
        "an AMD CPU pushes the selector zero-extended to a doubleword (the SDM allows both)",
    ),
];

/// Found cases where CPUs of one vendor differ among themselves, the SDM
/// leaving the choice open: (what, the CR2 a CPU that chose otherwise
/// shows, what it does). The engines keep the choice of the CPU the case
/// was found on; on a host whose CPU shows the other, only the engines'
/// side is checked.
const CPU_DEPENDENT: &[(&str, u32, &str)] = &[(
    "CMPSD with both operands unmapped faults on [EDI] first",
    0x8000_0F83,
    "this CPU reads [ESI] first (the SDM does not order CMPS's two reads; \
     AMD's Zen 3 reads [EDI] first, as QEMU's TCG does, Zen 5 [ESI])",
)];

/// The divergences found so far stay fixed (see RELIABILITY.md).
#[test]
fn found_divergences_stay_fixed() {
    let mut n = spawn();
    let mut failures = Vec::new();
    for f in FOUND {
        let mut case = Case::new(3).with_prog(Prog {
            items: vec![gen::Item {
                bytes: f.code.to_vec(),
                reads: 0,
                writes: 0,
                undef: 0,
                skip: 0,
            }],
        });
        case.start.gpr[4] = layout::STACK_TOP - 0x800;
        case.start.gpr[5] = layout::DATA;
        for &(r, v) in f.regs {
            case.start.gpr[r] = v;
        }
        case.start.eflags = 2 | if f.ac { 1 << 18 } else { 0 };
        let other = INTEL_ONLY.iter().find(|(w, _)| *w == f.what);
        let cpu = match (other, host_vendor()) {
            (Some((_, instead)), v) if v != "GenuineIntel" => {
                tests::skip(format!(
                    "{}: compared on the engines only: this host's CPU is {v}, and {instead}",
                    f.what
                ));
                None
            }
            _ => n.as_mut().map(|n| run_native(n, &case).unwrap()),
        };
        let other = CPU_DEPENDENT.iter().find(|(w, _, _)| *w == f.what);
        let cpu = match (other, cpu) {
            (Some((_, cr2, instead)), Some(cpu)) if cpu.cr2 == Some(*cr2) => {
                tests::skip(format!(
                    "{}: compared on the engines only: {instead}",
                    f.what
                ));
                None
            }
            (_, cpu) => cpu,
        };
        if let Some(cpu) = &cpu {
            if (cpu.how.clone(), cpu.cr2) != (Ok(f.vector), f.cr2) {
                failures.push(format!(
                    "{}: this CPU gives {:?}, CR2 {:x?}",
                    f.what, cpu.how, cpu.cr2
                ));
            }
        }
        for bt in [false, true] {
            let on = match &cpu {
                Some(cpu) => for_engines(&case, cpu),
                None => case.clone(),
            };
            let e = run_emu(bt, &on);
            let mut wrong = Vec::new();
            if e.how != Ok(f.vector) || e.cr2 != f.cr2 {
                wrong.push(format!("ends {:?} with CR2 {:x?}", e.how, e.cr2));
            }
            for &(r, v) in f.want {
                if e.regs.gpr[r] != v {
                    wrong.push(format!("register {r} is {:#x}, not {v:#x}", e.regs.gpr[r]));
                }
            }
            if let Some(cpu) = &cpu {
                wrong.extend(diff(&case, cpu, &e));
            }
            if !wrong.is_empty() {
                failures.push(format!("{} (bt={bt}): {}", f.what, wrong.join("; ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
