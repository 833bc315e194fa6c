//! Symbols of an ELF32 file (a lesson's guest, xv6's kernel): what a test
//! needs to set a breakpoint by name, read the way gdb finds them (the
//! SHT_SYMTAB section and the string table its sh_link names).

/// The value of symbol `name`, or None if the file has no such symbol (or
/// is not an ELF32 file with a symbol table).
pub fn symbol(elf: &[u8], name: &str) -> Option<u32> {
    let u16_at = |o: usize| -> Option<usize> {
        Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |o: usize| -> Option<usize> {
        Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?) as usize)
    };
    if elf.get(..5)? != b"\x7fELF\x01" {
        return None;
    }
    let (shoff, shentsize, shnum) = (u32_at(0x20)?, u16_at(0x2E)?, u16_at(0x30)?);
    let section = |i: usize| shoff + i * shentsize;
    for i in 0..shnum {
        let sh = section(i);
        // SHT_SYMTAB = 2; its sh_link is the string table.
        if u32_at(sh + 4)? != 2 {
            continue;
        }
        let (off, size, entsize) = (u32_at(sh + 0x10)?, u32_at(sh + 0x14)?, u32_at(sh + 0x24)?);
        let strtab = u32_at(section(u32_at(sh + 0x18)?) + 0x10)?;
        for s in (off..off + size).step_by(entsize.max(1)) {
            let at = strtab + u32_at(s)?;
            let len = elf.get(at..)?.iter().position(|&b| b == 0)?;
            if &elf[at..at + len] == name.as_bytes() {
                return Some(u32_at(s + 4)? as u32);
            }
        }
    }
    None
}
