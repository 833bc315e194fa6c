//! Image loaders. SKELETON: being written.

/// EAX at multiboot kernel entry (Multiboot spec 0.6.96, 3.2).
pub const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
