//! The fixed CPUID table every engine shows the guest.
//!
//! The same table on the interpreter, the translator and KVM (set with
//! KVM_SET_CPUID2), so a guest that prints its CPU prints the same thing
//! everywhere. It lists only features all three engines implement: an
//! i686-class integer CPU without x87, MMX or SSE.

/// Vendor string: twelve bytes in EBX, EDX, ECX order.
pub const VENDOR: &[u8; 12] = b"RinglabRings";

/// Family 6, model 1, stepping 1 (a P6-class CPU); also EDX after reset
/// (SDM Vol 3A 9.1.4: EDX holds the processor signature).
pub const SIGNATURE: u32 = (6 << 8) | (1 << 4) | 1;

/// CPUID.1:EDX feature bits (SDM Vol 2A, CPUID, table 3-11).
pub mod edx1 {
    /// Debugging extensions (CR4.DE).
    pub const DE: u32 = 1 << 2;
    /// 4 MiB pages (CR4.PSE).
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const CX8: u32 = 1 << 8;
    /// An on-chip local APIC (clear while IA32_APIC_BASE disables it).
    pub const APIC: u32 = 1 << 9;
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// Global pages (CR4.PGE).
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
}

/// The features ringlab's engines all implement.
pub const FEATURES_EDX: u32 =
    edx1::PSE | edx1::TSC | edx1::MSR | edx1::CX8 | edx1::APIC | edx1::SEP | edx1::PGE | edx1::CMOV;

/// IA32_APIC_BASE bit 11, the APIC's global enable.
pub const APIC_BASE_ENABLE: u64 = 1 << 11;

/// Highest basic and extended leaves.
pub const MAX_BASIC: u32 = 1;
pub const MAX_EXTENDED: u32 = 0x8000_0004;

const BRAND: &[u8; 48] = b"ringlab educational i686 CPU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

fn le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// CPUID result (EAX, EBX, ECX, EDX) for `leaf` and `subleaf`.
///
/// Leaves above the maximum return the highest basic leaf's data, as Intel
/// CPUs do (SDM Vol 2A, CPUID: "If a value entered for CPUID.EAX is higher
/// than the maximum input value for basic or extended function ... the data
/// for the highest basic information leaf is returned").
pub fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
    match leaf {
        0 => [
            MAX_BASIC,
            le(&VENDOR[0..4]),
            le(&VENDOR[8..12]),
            le(&VENDOR[4..8]),
        ],
        1 => [SIGNATURE, 0, 0, FEATURES_EDX],
        0x8000_0000 => [MAX_EXTENDED, 0, 0, 0],
        0x8000_0001 => [0, 0, 0, 0],
        0x8000_0002..=0x8000_0004 => {
            let i = (leaf - 0x8000_0002) as usize * 16;
            let b = &BRAND[i..i + 16];
            [le(&b[0..4]), le(&b[4..8]), le(&b[8..12]), le(&b[12..16])]
        }
        _ => cpuid(MAX_BASIC, 0),
    }
}

/// Every (leaf, subleaf) the table defines, for KVM_SET_CPUID2.
pub fn entries() -> Vec<(u32, u32, [u32; 4])> {
    let mut v = Vec::new();
    for leaf in (0..=MAX_BASIC).chain(0x8000_0000..=MAX_EXTENDED) {
        v.push((leaf, 0, cpuid(leaf, 0)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_brand() {
        let r = cpuid(0, 0);
        let mut v = Vec::new();
        for x in [r[1], r[3], r[2]] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(&v, VENDOR);
        let mut brand = Vec::new();
        for leaf in 0x8000_0002..=0x8000_0004 {
            for x in cpuid(leaf, 0) {
                brand.extend_from_slice(&x.to_le_bytes());
            }
        }
        assert!(brand.starts_with(b"ringlab educational i686 CPU\0"));
        assert_eq!(cpuid(7, 0), cpuid(1, 0));
        assert_eq!(entries().len(), 2 + 5);
    }
}
