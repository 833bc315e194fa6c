//! ringlab's coursework labs: each lesson is a guest program (GNU as, built
//! by build.rs), a lab sheet in markdown and the metadata the frontend uses.

/// How a lesson's image is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A boot sector: raw bytes at 0x7C00, entered in real mode.
    BootSector,
    /// A multiboot v1 ELF32 kernel, entered in protected mode.
    Multiboot,
}

#[derive(Debug)]
pub struct Lesson {
    pub name: &'static str,
    pub summary: &'static str,
    pub image: &'static [u8],
    pub format: Format,
    /// The lab sheet (markdown).
    pub sheet: &'static str,
    /// The guest's commented source.
    pub source: &'static str,
}

static LESSONS: &[Lesson] = &[
    Lesson {
        name: "hello",
        summary: "a boot sector in real mode writing to COM1 and to the VGA screen",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/hello.bin")),
        format: Format::BootSector,
        sheet: include_str!("../sheets/hello.md"),
        source: include_str!("../guests/hello.S"),
    },
    Lesson {
        name: "protected",
        summary: "a GDT, CR0.PE and the far jump into 32-bit protected mode",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/protected.bin")),
        format: Format::BootSector,
        sheet: include_str!("../sheets/protected.md"),
        source: include_str!("../guests/protected.S"),
    },
    Lesson {
        name: "interrupts",
        summary: "an IDT, the PIC at 0x20, the PIT at 100 Hz and a HLT loop counting five ticks",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/interrupts.bin")),
        format: Format::BootSector,
        sheet: include_str!("../sheets/interrupts.md"),
        source: include_str!("../guests/interrupts.S"),
    },
    Lesson {
        name: "rings",
        summary:
            "a TSS, IRET into ring 3, INT 0x80 system calls, CLI caught as #GP, the I/O bitmap",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/rings.bin")),
        format: Format::Multiboot,
        sheet: include_str!("../sheets/rings.md"),
        source: include_str!("../guests/rings.S"),
    },
    Lesson {
        name: "paging",
        summary:
            "page tables, user and supervisor pages, #PF with CR2 and the error code, demand paging",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/paging.bin")),
        format: Format::Multiboot,
        sheet: include_str!("../sheets/paging.md"),
        source: include_str!("../guests/paging.S"),
    },
    Lesson {
        name: "popek-goldberg",
        summary: "the sensitive but unprivileged instructions, in ring 0, ring 3 and under trap-and-emulate",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/popek-goldberg.bin")),
        format: Format::Multiboot,
        sheet: include_str!("../sheets/popek-goldberg.md"),
        source: include_str!("../guests/popek-goldberg.S"),
    },
    Lesson {
        name: "nanobench",
        summary: "Adams & Agesen's nanobenchmarks in cycles per operation, by RDTSC",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/nanobench.bin")),
        format: Format::Multiboot,
        sheet: include_str!("../sheets/nanobench.md"),
        source: include_str!("../guests/nanobench.S"),
    },
    Lesson {
        name: "determinism",
        summary: "a timer-driven guest: instruction-counted time against real time",
        image: include_bytes!(concat!(env!("OUT_DIR"), "/determinism.bin")),
        format: Format::Multiboot,
        sheet: include_str!("../sheets/determinism.md"),
        source: include_str!("../guests/determinism.S"),
    },
];

/// The benchmark guest (not a lesson): a boot sector that runs a tight
/// integer and memory loop of 900 M instructions, prints its checksum on
/// COM1 and shuts down through port 0x8900. See BENCHMARKS.md.
pub static COMPUTE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/compute.bin"));

/// A test guest (not a lesson): real mode, the PIC and the PIT at 100 Hz;
/// it spins until five timer ticks have arrived, prints "5 ticks" and exits
/// through port 0xF4. The KVM tests use it to check that timer interrupts
/// reach a guest that computes (it runs on kvm-pvm too).
pub static TICKS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ticks.bin"));

/// Every lesson, in course order.
pub fn all() -> &'static [Lesson] {
    LESSONS
}

/// The lesson called `name`.
pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.name == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_sector_lessons_are_boot_sectors() {
        for l in super::all() {
            if l.format == super::Format::BootSector {
                assert_eq!(l.image.len(), 512, "{}", l.name);
                assert_eq!(&l.image[510..], &[0x55, 0xAA], "{}", l.name);
            }
            assert!(l.sheet.contains("## Answers (for teachers)"), "{}", l.name);
        }
    }
}
