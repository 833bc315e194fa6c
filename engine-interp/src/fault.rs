//! Exceptions as values: a handler that faults returns `Err(Exc)`, which
//! unwinds to the block loop; the loop restores EIP to the faulting
//! instruction and delivers the exception through the IDT.

/// Exception vectors (SDM Vol 3A table 6-1).
pub mod vec {
    pub const DE: u8 = 0;
    pub const DB: u8 = 1;
    pub const BP: u8 = 3;
    pub const OF: u8 = 4;
    pub const BR: u8 = 5;
    pub const UD: u8 = 6;
    /// Device not available: named for the table, raised nowhere (the
    /// interpreter has no FPU whose use could trap).
    #[allow(dead_code)]
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
    pub const AC: u8 = 17;
}

/// An exception raised by an instruction (or by delivering one), packed in
/// one non-zero word so that `Result<(), Exc>` is returned in a register
/// by every handler: bits 0-15 the error code (selectors, #PF bits: x86
/// error codes fit in 16 bits), bits 16-23 the vector, bit 24 "has an
/// error code", bit 31 always set.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Exc(std::num::NonZeroU32);

pub type R<T> = Result<T, Exc>;

impl Exc {
    #[inline]
    pub fn new(vector: u8, code: Option<u32>) -> Exc {
        let mut v = (1u32 << 31) | ((vector as u32) << 16);
        if let Some(c) = code {
            v |= (1 << 24) | (c & 0xFFFF);
        }
        Exc(std::num::NonZeroU32::new(v).expect("bit 31 is set"))
    }
    #[inline]
    pub fn vector(self) -> u8 {
        (self.0.get() >> 16) as u8
    }
    #[inline]
    pub fn code(self) -> Option<u32> {
        let v = self.0.get();
        (v & (1 << 24) != 0).then_some(v & 0xFFFF)
    }
}

impl std::fmt::Debug for Exc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code() {
            Some(c) => write!(f, "Exc(vector {}, code {c:#x})", self.vector()),
            None => write!(f, "Exc(vector {})", self.vector()),
        }
    }
}

#[inline]
pub fn gp<T>(code: u32) -> R<T> {
    Err(Exc::new(vec::GP, Some(code)))
}
#[inline]
pub fn gp0<T>() -> R<T> {
    gp(0)
}
#[inline]
pub fn ss<T>(code: u32) -> R<T> {
    Err(Exc::new(vec::SS, Some(code)))
}
#[inline]
pub fn np<T>(code: u32) -> R<T> {
    Err(Exc::new(vec::NP, Some(code)))
}
#[inline]
pub fn ts<T>(code: u32) -> R<T> {
    Err(Exc::new(vec::TS, Some(code)))
}
#[inline]
pub fn ud<T>() -> R<T> {
    Err(Exc::new(vec::UD, None))
}
#[inline]
pub fn de<T>() -> R<T> {
    Err(Exc::new(vec::DE, None))
}

/// Exception classes for the double-fault rules (SDM Vol 3A table 6-4/6-5).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Benign,
    Contributory,
    PageFault,
    DoubleFault,
}

pub fn class(vector: u8) -> Class {
    match vector {
        0 | 10 | 11 | 12 | 13 => Class::Contributory,
        14 => Class::PageFault,
        8 => Class::DoubleFault,
        _ => Class::Benign,
    }
}

/// Whether an exception of `second` raised while delivering `first` becomes
/// a double fault (SDM Vol 3A table 6-5).
pub fn is_double(first: u8, second: u8) -> bool {
    matches!(
        (class(first), class(second)),
        (Class::Contributory, Class::Contributory)
            | (Class::PageFault, Class::Contributory)
            | (Class::PageFault, Class::PageFault)
    )
}
