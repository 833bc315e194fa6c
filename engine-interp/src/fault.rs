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
    pub const NM: u8 = 7;
    pub const DF: u8 = 8;
    pub const TS: u8 = 10;
    pub const NP: u8 = 11;
    pub const SS: u8 = 12;
    pub const GP: u8 = 13;
    pub const PF: u8 = 14;
}

/// An exception raised by an instruction (or by delivering one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exc {
    pub vector: u8,
    pub code: Option<u32>,
}

pub type R<T> = Result<T, Exc>;

impl Exc {
    #[inline]
    pub fn new(vector: u8, code: Option<u32>) -> Exc {
        Exc { vector, code }
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
