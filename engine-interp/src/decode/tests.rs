//! The instruction table against iced-x86.

use super::table::{attr, form, FORMS};
use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};

/// Every one- and two-byte opcode with every ModRM byte, under each
/// prefix combination, in 16- and 32-bit code; then pseudo-random bytes.
fn samples(mut each: impl FnMut(&Instruction)) {
    const PREFIXES: &[&[u8]] = &[
        &[],
        &[0x66],
        &[0x67],
        &[0x66, 0x67],
        &[0xF0],
        &[0xF0, 0x66],
        &[0xF3],
        &[0xF2],
        &[0xF3, 0x66, 0x67],
        &[0x26],
        &[0x64],
        &[0x2E, 0x67],
    ];
    const TAILS: &[[u8; 8]] = &[
        [0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0],
        [0x24, 0x80, 0xFF, 0x01, 0x00, 0x00, 0x80, 0x7F],
    ];
    let mut insn = Instruction::default();
    for bitness in [16, 32] {
        for p in PREFIXES {
            for two in [false, true] {
                for opc in 0..=255u8 {
                    for modrm in 0..=255u8 {
                        for tail in TAILS {
                            let mut b = p.to_vec();
                            if two {
                                b.push(0x0F);
                            }
                            b.extend([opc, modrm]);
                            b.extend(tail);
                            let mut d = Decoder::with_ip(bitness, &b, 0x1000, DecoderOptions::NONE);
                            d.decode_out(&mut insn);
                            each(&insn);
                        }
                    }
                }
            }
        }
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for bitness in [16, 32] {
        for _ in 0..200_000 {
            let mut b = [0u8; 15];
            for v in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x as u8;
            }
            let mut d = Decoder::with_ip(bitness, &b, 0x1000, DecoderOptions::NONE);
            d.decode_out(&mut insn);
            each(&insn);
        }
    }
}

/// Every line is reached by some encoding and lowers it; nothing the
/// decoder accepts makes lowering panic.
#[test]
fn every_line_lowers() {
    let mut n = 0;
    let mut lowered = std::collections::HashSet::new();
    samples(|i| {
        if i.is_invalid() {
            return;
        }
        n += 1;
        if super::lower(i).is_some() {
            lowered.insert(i.mnemonic());
        }
    });
    assert!(n > 100_000);
    for f in FORMS {
        assert!(
            lowered.contains(&f.mnemonic),
            "{:?} never lowered",
            f.mnemonic
        );
    }
}

/// The table's ENDS_BLOCK is iced-x86's flow control, for every encoding.
#[test]
fn ends_block_is_a_control_transfer() {
    for code in Code::values() {
        if let Some(f) = form(code.mnemonic()) {
            assert_eq!(
                f.attrs & attr::ENDS_BLOCK != 0,
                code.flow_control() != FlowControl::Next,
                "{code:?}"
            );
        }
    }
}

/// What the translator copies through is neither sensitive nor a control
/// transfer; each mnemonic has one line.
#[test]
fn attributes_are_consistent() {
    for f in FORMS {
        assert!(
            std::ptr::eq(form(f.mnemonic).unwrap(), f),
            "{:?}",
            f.mnemonic
        );
        if f.attrs & attr::IDENT != 0 {
            assert_eq!(
                f.attrs & (attr::SENSITIVE | attr::ENDS_BLOCK),
                0,
                "{:?}",
                f.mnemonic
            );
        }
    }
}
