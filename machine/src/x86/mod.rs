//! What the x86 architecture says, with no machine attached: the 32-bit
//! page walk, descriptor and gate decoding, and the CPUID table. Pure
//! functions of their inputs (register values, descriptor bytes, a reader
//! of physical memory), so every engine, the inspector and debuggers share
//! one reading of the manual instead of each writing its own. (The
//! paging module also has two readers of a [`crate::Machine`]'s memory that
//! change nothing, for inspectors and debuggers.)

pub mod cpuid;
pub mod descriptor;
pub mod paging;
