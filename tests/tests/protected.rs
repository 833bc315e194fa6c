//! Protected-mode behaviour of the interpreter, checked against the SDM:
//! ALU flags (Vol 2 instruction pages), exceptions and their error codes
//! (Vol 3A chapter 6), privilege transitions (chapter 5), paging (chapter
//! 4), hardware task switching (chapter 7), virtual-8086 mode (chapter 20),
//! double and triple faults, self-modifying code and real mode.
//!
//! Every guest is a small GNU as program (Intel syntax) after the common
//! kernel prologue in `tests/src/guest.rs`.

use machine::PrivCause;
use tests::guest::*;

// ---- 1. ALU flags -------------------------------------------------------------

const CF: u32 = 0x1;
const PF: u32 = 0x4;
const AF: u32 = 0x10;
const ZF: u32 = 0x40;
const SF: u32 = 0x80;
const OF: u32 = 0x800;
/// The six arithmetic status flags.
const ST: u32 = CF | PF | AF | ZF | SF | OF;

/// One ALU check: EFLAGS are set to `fin` (plus the fixed bit 1), `code`
/// runs, and EAX and the status flags selected by `mask` must come out as
/// `eax` and `fl`. The masks leave out exactly the flags the SDM
/// instruction page calls undefined.
struct Alu {
    name: &'static str,
    fin: u32,
    code: &'static str,
    eax: u32,
    fl: u32,
    mask: u32,
}

const fn alu(
    name: &'static str,
    fin: u32,
    code: &'static str,
    eax: u32,
    fl: u32,
    mask: u32,
) -> Alu {
    Alu {
        name,
        fin,
        code,
        eax,
        fl,
        mask,
    }
}

/// Expected values worked out by hand from the SDM Vol 2 instruction pages
/// (the flag formulas in their "Flags Affected" sections), and cross-checked
/// by running the same snippets natively on an x86 host (the masks drop the
/// flags the SDM leaves undefined, where real CPUs differ).
#[rustfmt::skip]
const ALU_CASES: &[Alu] = &[
    // ADD/ADC/SUB/SBB/NEG/INC/DEC/CMP at the 32-bit edges.
    alu("add 7fffffff+1", 0, "mov eax, 0x7FFFFFFF; add eax, 1", 0x8000_0000, OF | SF | AF | PF, ST),
    alu("add ffffffff+1", 0, "mov eax, 0xFFFFFFFF; add eax, 1", 0, CF | ZF | AF | PF, ST),
    alu("add 80000000+80000000", 0, "mov eax, 0x80000000; mov ecx, eax; add eax, ecx", 0, CF | OF | ZF | PF, ST),
    alu("adc 7fffffff+0+CF", CF, "mov eax, 0x7FFFFFFF; adc eax, 0", 0x8000_0000, OF | SF | AF | PF, ST),
    alu("adc ffffffff+ffffffff+CF", CF, "mov eax, 0xFFFFFFFF; mov ecx, eax; adc eax, ecx", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("adc 0+0+CF=0", 0, "xor eax, eax; mov eax, 0; adc eax, 0", 0, ZF | PF, ST),
    alu("sub 80000000-1", 0, "mov eax, 0x80000000; sub eax, 1", 0x7FFF_FFFF, OF | AF | PF, ST),
    alu("sub 0-1", 0, "xor eax, eax; sub eax, 1", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("sbb 0-0-CF", CF, "mov eax, 0; sbb eax, 0", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("sbb 80000000-7fffffff-CF", CF, "mov eax, 0x80000000; mov ecx, 0x7FFFFFFF; sbb eax, ecx", 0, ZF | OF | AF | PF, ST),
    alu("sbb ffffffff-ffffffff-CF", CF, "mov eax, 0xFFFFFFFF; mov ecx, eax; sbb eax, ecx", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("neg 80000000", 0, "mov eax, 0x80000000; neg eax", 0x8000_0000, CF | OF | SF | PF, ST),
    alu("neg 0", CF, "mov eax, 0; neg eax", 0, ZF | PF, ST),
    alu("neg 1", 0, "mov eax, 1; neg eax", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("inc 7fffffff keeps CF", CF, "mov eax, 0x7FFFFFFF; inc eax", 0x8000_0000, CF | OF | SF | AF | PF, ST),
    alu("dec 80000000 keeps CF", 0, "mov eax, 0x80000000; dec eax", 0x7FFF_FFFF, OF | AF | PF, ST),
    alu("inc ffffffff", 0, "mov eax, 0xFFFFFFFF; inc eax", 0, ZF | AF | PF, ST),
    alu("dec 0", CF, "mov eax, 0; dec eax", 0xFFFF_FFFF, CF | SF | AF | PF, ST),
    alu("cmp 7fffffff,80000000", 0, "mov eax, 0x7FFFFFFF; cmp eax, 0x80000000", 0x7FFF_FFFF, CF | OF | SF | PF, ST),
    alu("cmp 0,0", CF | OF, "xor eax, eax; cmp eax, 0", 0, ZF | PF, ST),
    alu("cmp 80000000,1", 0, "mov eax, 0x80000000; cmp eax, 1", 0x8000_0000, OF | AF | PF, ST),
    // 8- and 16-bit forms: the rest of EAX is untouched.
    alu("add al 7f+1", 0, "mov eax, 0x1234567F; add al, 1", 0x1234_5680, OF | SF | AF, ST),
    alu("add al ff+1", 0, "mov eax, 0x123456FF; add al, 1", 0x1234_5600, CF | ZF | AF | PF, ST),
    alu("sub al 80-1", 0, "mov eax, 0x12345680; sub al, 1", 0x1234_567F, OF | AF, ST),
    alu("add ah ff+1", 0, "mov eax, 0x1234FF00; add ah, 1", 0x1234_0000, CF | ZF | AF | PF, ST),
    alu("adc al ff+0+CF", CF, "mov eax, 0x000000FF; adc al, 0", 0, CF | ZF | AF | PF, ST),
    alu("sbb al 0-ff-CF", CF, "mov eax, 0xAB00; mov cl, 0xFF; sbb al, cl", 0xAB00, CF | ZF | AF | PF, ST),
    alu("add ax 7fff+1", 0, "mov eax, 0xABCD7FFF; add ax, 1", 0xABCD_8000, OF | SF | AF | PF, ST),
    alu("sub ax 0-1", 0, "mov eax, 0xABCD0000; sub ax, 1", 0xABCD_FFFF, CF | SF | AF | PF, ST),
    alu("neg ax 8000", 0, "mov eax, 0xABCD8000; neg ax", 0xABCD_8000, CF | OF | SF | PF, ST),
    alu("dec ax 8000 keeps CF", CF, "mov eax, 0xABCD8000; dec ax", 0xABCD_7FFF, CF | OF | AF | PF, ST),
    alu("inc al ff", 0, "mov eax, 0x5555FF; inc al", 0x0055_5500, ZF | AF | PF, ST),
    alu("cmp ax 8000,7fff", 0, "mov eax, 0x8000; cmp ax, 0x7FFF", 0x8000, OF | AF, ST),
    // MUL/IMUL: CF = OF = "the upper half is significant"; SF, ZF, AF, PF
    // undefined.
    alu("mul 80000000*2 edx", 0, "mov eax, 0x80000000; mov ecx, 2; mul ecx; mov eax, edx", 1, CF | OF, CF | OF),
    alu("mul 80000000*2 eax", 0, "mov eax, 0x80000000; mov ecx, 2; mul ecx", 0, CF | OF, CF | OF),
    alu("mul ffff*ffff", CF | OF, "mov eax, 0xFFFF; mov ecx, eax; mul ecx", 0xFFFE_0001, 0, CF | OF),
    alu("mul ffff*ffff edx=0", 0, "mov eax, 0xFFFF; mov ecx, eax; mov edx, 7; mul ecx; mov eax, edx", 0, 0, CF | OF),
    alu("imul -1*-1", CF | OF, "mov eax, -1; mov ecx, -1; imul ecx; mov eax, edx", 0, 0, CF | OF),
    alu("imul 80000000*-1 one-op", 0, "mov eax, 0x80000000; mov ecx, -1; imul ecx; mov eax, edx", 0, CF | OF, CF | OF),
    alu("imul r,r 40000000*2", 0, "mov eax, 0x40000000; mov ecx, 2; imul eax, ecx", 0x8000_0000, CF | OF, CF | OF),
    alu("imul r,r,imm 80000000*-1", 0, "mov ecx, 0x80000000; imul eax, ecx, -1", 0x8000_0000, CF | OF, CF | OF),
    alu("imul r,r,imm -3*5", CF | OF, "mov ecx, -3; imul eax, ecx, 5", 0xFFFF_FFF1, 0, CF | OF),
    alu("imul al 80*ff", 0, "mov eax, 0x12345680; mov cl, 0xFF; imul cl", 0x1234_0080, CF | OF, CF | OF),
    alu("imul al 80*1", CF | OF, "mov eax, 0x12345680; mov cl, 1; imul cl", 0x1234_FF80, 0, CF | OF),
    alu("mul al 10*10", 0, "mov eax, 0xFFFF0010; mov cl, 0x10; mul cl", 0xFFFF_0100, CF | OF, CF | OF),
    alu("imul ax 7fff*2", 0, "mov eax, 0x7FFF; mov ecx, 2; imul cx", 0xFFFE, CF | OF, CF | OF),
    alu("imul ax 7fff*2 dx", 0, "mov eax, 0x7FFF; mov ecx, 2; mov edx, 0xAAAA5555; imul cx; mov eax, edx", 0xAAAA_0000, CF | OF, CF | OF),
    // Shifts: a masked count of 0 changes nothing; OF is defined for 1-bit
    // shifts only, AF never.
    alu("shl by cl=0", ST, "mov eax, 0x12345678; mov cl, 0; shl eax, cl", 0x1234_5678, ST, ST),
    alu("shl by cl=32 (masked to 0)", ST, "mov eax, 0x12345678; mov cl, 32; shl eax, cl", 0x1234_5678, ST, ST),
    alu("shl 80000001,1", 0, "mov eax, 0x80000001; shl eax, 1", 2, CF | OF, ST & !AF),
    alu("shl 40000000,1", CF, "mov eax, 0x40000000; shl eax, 1", 0x8000_0000, OF | SF | PF, ST & !AF),
    alu("shl 3,31", 0, "mov eax, 3; shl eax, 31", 0x8000_0000, CF | SF | PF, CF | PF | ZF | SF),
    alu("shl 1,cl=33 (masked to 1)", 0, "mov eax, 1; mov cl, 33; shl eax, cl", 2, 0, ST & !AF),
    alu("shr 80000001,1", 0, "mov eax, 0x80000001; shr eax, 1", 0x4000_0000, CF | OF | PF, ST & !AF),
    alu("shr 80000000,31", 0, "mov eax, 0x80000000; shr eax, 31", 1, 0, CF | PF | ZF | SF),
    alu("shr 1,1", 0, "mov eax, 1; shr eax, 1", 0, CF | ZF | PF, ST & !AF),
    alu("sar 80000000,31", 0, "mov eax, 0x80000000; sar eax, 31", 0xFFFF_FFFF, SF | PF, CF | PF | ZF | SF),
    alu("sar 80000001,1", OF, "mov eax, 0x80000001; sar eax, 1", 0xC000_0000, CF | SF | PF, ST & !AF),
    alu("sar al 81,cl=32 (masked 0)", ST, "mov eax, 0x81; mov cl, 32; sar al, cl", 0x81, ST, ST),
    alu("sar al 80,7", 0, "mov eax, 0x80; sar al, 7", 0xFF, SF | PF, CF | PF | ZF | SF),
    // Rotates change CF and OF only.
    alu("rol 80000000,1", ZF | SF | PF | AF, "mov eax, 0x80000000; rol eax, 1", 1, CF | OF | ZF | SF | PF | AF, ST),
    alu("ror 1,1", 0, "mov eax, 1; ror eax, 1", 0x8000_0000, CF | OF, ST),
    alu("rol by cl=32 (masked to 0)", ST, "mov eax, 0x12345678; mov cl, 32; rol eax, cl", 0x1234_5678, ST, ST),
    alu("rol 12345678,4", 0, "mov eax, 0x12345678; rol eax, 4", 0x2345_6781, CF, ST & !OF),
    alu("ror 12345678,31", 0, "mov eax, 0x12345678; ror eax, 31", 0x2468_ACF0, 0, ST & !OF),
    alu("rol al 81,8 (CF=LSB)", 0, "mov eax, 0x81; rol al, 8", 0x81, CF, ST & !OF),
    alu("rcl 80000000,1 CF=1", CF, "mov eax, 0x80000000; rcl eax, 1", 1, CF | OF, ST),
    alu("rcr 1,1 CF=1", CF, "mov eax, 1; rcr eax, 1", 0x8000_0000, CF | OF, ST),
    alu("rcr 0,1 CF=1", CF, "mov eax, 0; rcr eax, 1", 0x8000_0000, OF, ST),
    alu("rcl 1,31 CF=0", 0, "mov eax, 1; rcl eax, 31", 0x8000_0000, 0, ST & !OF),
    alu("rcl 1,31 CF=1", CF, "mov eax, 1; rcl eax, 31", 0xC000_0000, 0, ST & !OF),
    alu("rcr 0,31 CF=1", CF, "mov eax, 0; rcr eax, 31", 2, 0, ST & !OF),
    alu("rcr 2,2 CF=0", 0, "mov eax, 2; rcr eax, 2", 0, CF, ST & !OF),
    alu("rcl by cl=32 (masked 0)", CF | OF, "mov eax, 0x12345678; mov cl, 32; rcl eax, cl", 0x1234_5678, CF | OF, ST),
    alu("rcl al 81,9 (mod 9 = 0)", CF | OF, "mov eax, 0x81; rcl al, 9", 0x81, CF, ST & !OF),
    alu("rcl al 81,1 CF=0", 0, "mov eax, 0x81; rcl al, 1", 0x02, CF | OF, ST),
    alu("rcr ax 1,17 (mod 17 = 0)", CF, "mov eax, 0x10001; rcr ax, 17", 0x1_0001, CF, ST),
    alu("rcr ax 1,16 CF=0", 0, "mov eax, 0x10001; rcr ax, 16", 0x1_0002, 0, ST & !OF),
    alu("shld 4", 0, "mov eax, 0x12345678; mov edx, 0x9ABCDEF0; shld eax, edx, 4", 0x2345_6789, CF, CF | PF | ZF | SF),
    alu("shrd 8", 0, "mov eax, 0x12345678; mov edx, 0x9ABCDEF0; shrd eax, edx, 8", 0xF012_3456, SF | PF, CF | PF | ZF | SF),
    alu("shrd by cl=32 (masked 0)", ST, "mov eax, 0x12345678; mov edx, 1; mov cl, 32; shrd eax, edx, cl", 0x1234_5678, ST, ST),
    // BT/BTS/BTR/BTC: CF = the bit; ZF unaffected (the others undefined). A
    // register bit offset with a memory operand is a signed bit-string
    // index (SDM Vol 2A "BT", "Bit(BitBase, BitOffset)").
    alu("bt [6010], -1", ZF, "mov dword ptr [SCRATCH + 0x0C], 0x80000000; mov ebx, SCRATCH + 0x10; mov ecx, -1; bt [ebx], ecx; setc al; movzx eax, al", 1, CF | ZF, CF | ZF),
    alu("bts [6000], 100", 0, "mov ebx, SCRATCH + 0x00; mov ecx, 100; bts [ebx], ecx; mov eax, [SCRATCH + 0x0C]", 0x8000_0010, 0, CF | ZF),
    alu("bts [6010], -33", ZF, "mov ebx, SCRATCH + 0x10; mov ecx, -33; bts [ebx], ecx; mov eax, [SCRATCH + 0x08]", 0x8000_0000, ZF, CF | ZF),
    alu("btr [6010], -33", 0, "mov ebx, SCRATCH + 0x10; mov ecx, -33; btr [ebx], ecx; mov eax, [SCRATCH + 0x08]", 0, CF, CF | ZF),
    alu("btc [6000], 0x7fffffff", 0, "mov ebx, SCRATCH + 0x00 - 0x0FFFFFFC; mov ecx, 0x7FFFFFFF; btc [ebx], ecx; mov eax, [SCRATCH + 0x00]", 0x8000_0000, 0, CF | ZF),
    alu("bt word [6010], -1", 0, "mov ebx, SCRATCH + 0x10; mov ecx, 0xFFFF; bt word ptr [ebx], cx; setc al; movzx eax, al", 1, CF, CF | ZF),
    alu("bt word [6010], -17", 0, "mov word ptr [SCRATCH + 0x0C], 0x8000; mov ebx, SCRATCH + 0x10; mov ecx, -17; bt word ptr [ebx], cx; mov eax, 0; setc al", 1, CF, CF | ZF),
    alu("bt [6000], imm 36 (mod 32)", 0, "mov dword ptr [SCRATCH + 0x00], 0x10; mov dword ptr [SCRATCH + 0x04], 0; bt dword ptr [SCRATCH + 0x00], 36; setc al; movzx eax, al", 1, CF, CF | ZF),
    alu("bt reg, imm 33", 0, "mov eax, 2; bt eax, 33", 2, CF, CF | ZF),
    alu("bts reg, reg 63", 0, "mov eax, 1; mov ecx, 63; bts eax, ecx", 0x8000_0001, 0, CF | ZF),
    // BSF/BSR of 0: ZF = 1, destination unchanged (P6 behaviour; the SDM
    // says undefined, but every Intel CPU and the AMD manual leave it).
    alu("bsf 0", 0, "mov eax, 0x12345678; xor ecx, ecx; mov ecx, 0; bsf eax, ecx", 0x1234_5678, ZF, ZF),
    alu("bsr 0", 0, "mov eax, 0x12345678; mov ecx, 0; bsr eax, ecx", 0x1234_5678, ZF, ZF),
    alu("bsf 80", ZF, "mov ecx, 0x80; bsf eax, ecx", 7, 0, ZF),
    alu("bsr 80000001", ZF, "mov ecx, 0x80000001; bsr eax, ecx", 31, 0, ZF),
    alu("bsr ax 0001", 0, "mov eax, 0xFFFF0000; mov ecx, 1; bsr ax, cx", 0xFFFF_0000, 0, ZF),
    // CMPXCHG: the flags of CMP accumulator, destination.
    alu("cmpxchg equal", 0, "mov dword ptr [SCRATCH + 0x20], 5; mov eax, 5; mov ecx, 9; cmpxchg [SCRATCH + 0x20], ecx; mov eax, [SCRATCH + 0x20]", 9, ZF | PF, ST),
    alu("cmpxchg unequal", 0, "mov dword ptr [SCRATCH + 0x20], 5; mov eax, 1; mov ecx, 9; cmpxchg [SCRATCH + 0x20], ecx", 5, CF | SF | AF | PF, ST),
    alu("cmpxchg unequal keeps dest", 0, "mov dword ptr [SCRATCH + 0x20], 5; mov eax, 1; mov ecx, 9; cmpxchg [SCRATCH + 0x20], ecx; mov eax, [SCRATCH + 0x20]", 5, CF | SF | AF | PF, ST),
    alu("cmpxchg al,cl reg", 0, "mov eax, 0x1234; mov ebx, 0x34; mov cl, 0x77; cmpxchg bl, cl; mov eax, ebx", 0x77, ZF | PF, ST),
    alu("xadd", 0, "mov dword ptr [SCRATCH + 0x20], 0x7FFFFFFF; mov ecx, 1; xadd [SCRATCH + 0x20], ecx; mov eax, [SCRATCH + 0x20]", 0x8000_0000, OF | SF | AF | PF, ST),
    alu("xadd old value", 0, "mov dword ptr [SCRATCH + 0x20], 0x7FFFFFFF; mov ecx, 1; xadd [SCRATCH + 0x20], ecx; mov eax, ecx", 0x7FFF_FFFF, OF | SF | AF | PF, ST),
    // CMPXCHG8B changes ZF only.
    alu("cmpxchg8b equal", CF, "mov dword ptr [SCRATCH + 0x28], 0x11111111; mov dword ptr [SCRATCH + 0x2C], 0x22222222; mov eax, 0x11111111; mov edx, 0x22222222; mov ebx, 0xAAAAAAAA; mov ecx, 0xBBBBBBBB; cmpxchg8b [SCRATCH + 0x28]; mov eax, [SCRATCH + 0x2C]", 0xBBBB_BBBB, CF | ZF, ST),
    alu("cmpxchg8b unequal", ZF | SF, "mov dword ptr [SCRATCH + 0x28], 0x11111111; mov dword ptr [SCRATCH + 0x2C], 0x22222222; mov eax, 0; mov edx, 0x22222222; mov ebx, 0xAAAAAAAA; mov ecx, 0xBBBBBBBB; cmpxchg8b [SCRATCH + 0x28]", 0x1111_1111, SF, ST),
    alu("cmpxchg8b unequal edx", 0, "mov dword ptr [SCRATCH + 0x28], 0x11111111; mov dword ptr [SCRATCH + 0x2C], 0x22222222; mov eax, 0; mov edx, 0; cmpxchg8b [SCRATCH + 0x28]; mov eax, edx", 0x2222_2222, 0, ST),
    // DAA/DAS (OF undefined).
    alu("add+daa 79+35", 0, "mov eax, 0x79; add al, 0x35; daa", 0x14, CF | AF | PF, ST & !OF),
    alu("add+daa 09+01", 0, "mov eax, 0x09; add al, 0x01; daa", 0x10, AF, ST & !OF),
    alu("add+daa 99+01", 0, "mov eax, 0x99; add al, 0x01; daa", 0x00, CF | AF | ZF | PF, ST & !OF),
    alu("sub+das 35-47", 0, "mov eax, 0x35; sub al, 0x47; das", 0x88, CF | AF | SF | PF, ST & !OF),
    alu("sub+das 10-01", 0, "mov eax, 0x10; sub al, 0x01; das", 0x09, AF | PF, ST & !OF),
    // SETcc after CMP 0x80000000, 1 (OF=1 SF=0 CF=0 ZF=0 PF=1): bytes of
    // [l, a, g, b] and [o, s, p, e].
    alu("setcc l a g b", 0, "mov edx, 0x80000000; cmp edx, 1; setl byte ptr [SCRATCH + 0x40]; seta byte ptr [SCRATCH + 0x41]; setg byte ptr [SCRATCH + 0x42]; setb byte ptr [SCRATCH + 0x43]; mov eax, [SCRATCH + 0x40]", 0x0000_0101, OF | AF | PF, ST),
    alu("setcc o s p e", 0, "mov edx, 0x80000000; cmp edx, 1; seto byte ptr [SCRATCH + 0x44]; sets byte ptr [SCRATCH + 0x45]; setp byte ptr [SCRATCH + 0x46]; sete byte ptr [SCRATCH + 0x47]; mov eax, [SCRATCH + 0x44]", 0x0001_0001, OF | AF | PF, ST),
    alu("setcc le ge be ae", 0, "mov edx, 5; cmp edx, 5; setle byte ptr [SCRATCH + 0x48]; setge byte ptr [SCRATCH + 0x49]; setbe byte ptr [SCRATCH + 0x4A]; setnae byte ptr [SCRATCH + 0x4B]; mov eax, [SCRATCH + 0x48]", 0x0001_0101, ZF | PF, ST),
    alu("cmovl taken", 0, "mov eax, 0x80000000; mov ecx, 7; cmp eax, 1; cmovl eax, ecx", 7, OF | AF | PF, ST),
    alu("cmovg not taken", 0, "mov eax, 0x80000000; mov ecx, 7; cmp eax, 1; cmovg eax, ecx", 0x8000_0000, OF | AF | PF, ST),
    alu("cmova mem taken", 0, "mov dword ptr [SCRATCH + 0x50], 0x55AA; mov eax, 0x80000000; cmp eax, 1; cmova eax, [SCRATCH + 0x50]", 0x55AA, OF | AF | PF, ST),
    alu("cmovb ax not taken", 0, "mov eax, 0x12345678; mov ecx, 0xFFFFFFFF; cmp eax, 1; cmovb ax, cx", 0x1234_5678, 0, ST & !AF & !PF),
];

/// Stack, string-table, conversion and BCD instructions at their edges
/// (SDM Vol 2 pages of PUSH, POP, ENTER, LEAVE, RET, POPA, CWDE, CDQ,
/// MOVSX, XLAT, BSWAP, LEA, LOOP, JECXZ, SAHF, LAHF, AAA, AAS, AAM, AAD,
/// NOT), same checking scheme as `ALU_CASES`.
#[rustfmt::skip]
const MISC_CASES: &[Alu] = &[
    alu("push esp pushes the old value", 0, "mov ebp, esp; push esp; pop eax; sub eax, ebp", 0, 0, 0),
    alu("pop esp loads the popped value", 0, "mov ebp, esp; push 0x12345678; pop esp; mov eax, esp; mov esp, ebp", 0x1234_5678, 0, 0),
    alu("pop [esp] addresses after the increment", 0, "mov ebp, esp; push 0xAAAA; push 0xBBBB; pop dword ptr [esp]; mov eax, [esp]; mov esp, ebp", 0xBBBB, 0, 0),
    alu("pop [esp] leaves esp+4", 0, "mov ebp, esp; push 0xAAAA; push 0xBBBB; pop dword ptr [esp]; mov eax, esp; sub eax, ebp; mov esp, ebp", 0xFFFF_FFFC, 0, 0),
    alu("push imm16 with 66h", 0, "mov ebp, esp; pushw 0x1234; mov eax, ebp; sub eax, esp; mov esp, ebp", 2, 0, 0),
    alu("enter 8,1 frame size", 0, "mov ebx, esp; mov ebp, 0x1111; enter 8, 1; mov eax, ebx; sub eax, esp; mov esp, ebx", 16, 0, 0),
    alu("enter 8,1 saved ebp", 0, "mov ebx, esp; mov ebp, 0x1111; enter 8, 1; mov eax, [ebp]; mov esp, ebx", 0x1111, 0, 0),
    alu("enter 8,1 frame pointer copy", 0, "mov ebx, esp; mov ebp, 0x1111; enter 8, 1; mov eax, [ebp - 4]; sub eax, ebp; mov esp, ebx", 0, 0, 0),
    alu("leave", 0, "mov ebx, esp; push 0x5555; mov ebp, esp; sub esp, 0x20; leave; mov eax, ebp; mov ecx, ebx; sub ecx, esp; add eax, ecx; mov esp, ebx", 0x5555, 0, 0),
    alu("ret imm16", 0, "mov ebx, esp; push 1; push 2; call 1f; jmp 2f; 1: ret 8; 2: mov eax, ebx; sub eax, esp; mov esp, ebx", 0, 0, 0),
    alu("popad skips the esp slot", 0, "mov ebx, esp; pushad; mov dword ptr [esp + 12], 0x77777777; popad; mov eax, esp; sub eax, ebx", 0, 0, 0),
    alu("cwde", 0, "mov eax, 0x12348000; cwde", 0xFFFF_8000, 0, 0),
    alu("cbw", 0, "mov eax, 0x12345680; cbw", 0x1234_FF80, 0, 0),
    alu("cdq", 0, "mov eax, 0x80000000; cdq; mov eax, edx", 0xFFFF_FFFF, 0, 0),
    alu("cwd", 0, "mov edx, 0x12345678; mov eax, 0x8000; cwd; mov eax, edx", 0x1234_FFFF, 0, 0),
    alu("movsx r32, r8", 0, "mov ecx, 0x80; movsx eax, cl", 0xFFFF_FF80, 0, 0),
    alu("movzx r32, r16", 0, "mov ecx, 0xFFFF8001; movzx eax, cx", 0x8001, 0, 0),
    alu("movsx r16, m8 keeps upper eax", 0, "mov byte ptr [SCRATCH + 0x60], 0xFE; mov eax, 0xABCD0000; movsx ax, byte ptr [SCRATCH + 0x60]", 0xABCD_FFFE, 0, 0),
    alu("xlatb", 0, "mov ebx, SCRATCH + 0x100; mov byte ptr [SCRATCH + 0x105], 0x5A; mov eax, 0x12345605; xlatb", 0x1234_565A, 0, 0),
    alu("bswap", 0, "mov eax, 0x12345678; bswap eax", 0x7856_3412, 0, 0),
    alu("lea r16 keeps upper eax", 0, "mov eax, 0xFFFF0000; mov ebx, 0x12345; mov ecx, 1; lea ax, [ebx + ecx]", 0xFFFF_2346, 0, 0),
    alu("loop with ecx=0 wraps", 0, "mov ecx, 0; xor eax, eax; 1: inc eax; cmp eax, 3; je 2f; loop 1b; 2: mov eax, ecx", 0xFFFF_FFFE, 0, 0),
    alu("jecxz taken", 0, "mov ecx, 0; mov eax, 1; jecxz 1f; mov eax, 2; 1:", 1, 0, 0),
    alu("imul r16,r16,imm overflow", 0, "mov eax, 0xABCD1234; mov ecx, 0xFFFF0100; imul ax, cx, 0x100", 0xABCD_0000, CF | OF, CF | OF),
    alu("sahf/lahf", 0, "mov eax, 0xFF00; sahf; mov eax, 0; lahf", 0xD700, CF | PF | AF | ZF | SF, CF | PF | AF | ZF | SF),
    alu("not keeps flags", CF | ZF, "mov eax, 0x0F0F0F0F; not eax", 0xF0F0_F0F0, CF | ZF, ST),
    alu("aaa", 0, "mov eax, 0x0009; add al, 1; aaa", 0x0100, CF | AF, CF | AF),
    alu("aas", 0, "mov eax, 0x0100; sub al, 1; aas", 0x0009, CF | AF, CF | AF),
    alu("aad", 0, "mov eax, 0x0207; aad", 0x001B, PF, SF | ZF | PF),
    alu("aam", 0, "mov eax, 0x001B; aam", 0x0207, 0, SF | ZF | PF),
    alu("aam 16", 0, "mov eax, 0x00FF; aam 16", 0x0F0F, PF, SF | ZF | PF),
    // 16-bit addressing wraps at 64 KiB: [bx + si] with bx=0xFFFF, si=2 is
    // offset 1 (SDM Vol 1 3.7.5, the address-size attribute).
    alu("addr16 wraps", 0, "mov byte ptr [1], 0x66; mov ebx, 0xFFFF; mov esi, 2; mov eax, 0; addr16 mov al, [bx + si]", 0x66, 0, 0),
];

fn table_source(cases: &[Alu]) -> String {
    let mut s = String::from("# CASES BEGIN\n");
    for (i, c) in cases.iter().enumerate() {
        s += &format!(
            "# {name}\n    push {fin:#x}\n    popfd\n    {code}\n    mov [RESULTS + {o}], eax\n    pushfd\n    pop dword ptr [RESULTS + {o} + 4]\n    and dword ptr [RESULTS + {o} + 4], {keep:#x}\n",
            name = c.name,
            fin = c.fin | 2,
            code = c.code,
            o = i * 8,
            // The guest keeps only the defined flags, so every engine
            // (and every real CPU) stores the same results.
            keep = !(ST & !c.mask),
        );
    }
    s += "# CASES END\n    EXIT DONE\n";
    s
}

/// Runs a table of cases in one guest and reports every mismatch.
fn check_table(name: &str, cases: &[Alu]) {
    assert!(cases.len() * 8 <= 0x1000);
    let mut r = run_kernel(name, &table_source(cases));
    r.assert_done();
    let mut bad = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let eax = r.result(2 * i as u32);
        let fl = r.result(2 * i as u32 + 1);
        if eax != c.eax || fl & c.mask != c.fl & c.mask {
            bad.push(format!(
                "{}: eax {eax:#010x} (want {:#010x}), flags {:#05x} (want {:#05x} under mask {:#05x})",
                c.name,
                c.eax,
                fl & c.mask,
                c.fl & c.mask,
                c.mask
            ));
        }
    }
    assert!(bad.is_empty(), "mismatches:\n{}", bad.join("\n"));
}

#[test]
fn misc_instruction_edges() {
    check_table("misc_insns", MISC_CASES);
}

#[test]
fn alu_flags_at_edge_values() {
    check_table("alu_flags", ALU_CASES);
}

// ---- 2. Exceptions and their error codes ----------------------------------------

/// DIV/IDIV/AAM raise #DE as a fault (SDM Vol 3A 6.15 "Interrupt 0"): the
/// saved EIP is the dividing instruction and no register changes. Division
/// by zero and a quotient too large for the destination both fault,
/// including INT_MIN / -1.
#[test]
fn divide_errors() {
    let mut r = run_kernel(
        "divide_errors",
        r#"
    EXPECT_FAULT 1f
    mov eax, 0x1234
    xor edx, edx
    xor ecx, ecx
de_div0:
    div ecx
1:  mov [RESULTS + 0], eax
    mov [RESULTS + 4], edx
    EXPECT_FAULT 1f
    mov edx, 1
    xor eax, eax
    mov ecx, 1
de_divov:
    div ecx
1:  mov [RESULTS + 8], edx
    EXPECT_FAULT 1f
    mov edx, 0xFFFFFFFF
    mov eax, 0x80000000
    mov ecx, -1
de_idivmin:
    idiv ecx
1:  mov [RESULTS + 12], eax
    mov [RESULTS + 16], edx
    EXPECT_FAULT 1f
    mov eax, 0x8000
    mov cl, 0xFF
de_idiv8:
    idiv cl
1:  mov [RESULTS + 20], eax
    EXPECT_FAULT 1f
    mov eax, 0xFFFF
    mov cl, 0xFF
de_div8:
    div cl
1:  EXPECT_FAULT 1f
de_aam:
    aam 0
1:  mov edx, -1
    mov eax, -7
    mov ecx, 2
    idiv ecx
    mov [RESULTS + 24], eax
    mov [RESULTS + 28], edx
    mov edx, 0xFFFFFFFF
    mov eax, 0x80000000
    mov ecx, 1
    idiv ecx
    mov [RESULTS + 32], eax
    mov [RESULTS + 36], edx
    mov dword ptr [RESULTS + 0x40], offset de_div0
    mov dword ptr [RESULTS + 0x44], offset de_divov
    mov dword ptr [RESULTS + 0x48], offset de_idivmin
    mov dword ptr [RESULTS + 0x4C], offset de_idiv8
    mov dword ptr [RESULTS + 0x50], offset de_div8
    mov dword ptr [RESULTS + 0x54], offset de_aam
    EXIT DONE
"#,
    );
    r.assert_done();
    let eips: Vec<u32> = (0x10..0x16).map(|i| r.result(i)).collect();
    let got = r.fault_sites();
    let want: Vec<(u32, u32, u32)> = eips.iter().map(|&e| (0, NOERR, e)).collect();
    assert_eq!(got, want, "six #DE faults at the dividing instructions");
    assert_eq!(
        (0..10).map(|i| r.result(i)).collect::<Vec<_>>(),
        vec![
            0x1234,
            0,
            1,
            0x8000_0000,
            0xFFFF_FFFF,
            0x8000,
            0xFFFF_FFFD,
            0xFFFF_FFFF,
            0x8000_0000,
            0
        ],
        "registers untouched by the faulting divisions; -7/2 = -3 rem -1; INT_MIN/1 = INT_MIN"
    );
    let ex: Vec<(u8, Option<u32>, u32)> = eips.iter().map(|&e| (0, None, e)).collect();
    assert_eq!(r.exceptions(), ex);
}

/// Segment register loads and accesses (SDM Vol 3A 5.3, 5.5-5.6, 6.15 and
/// the MOV/POP pages of Vol 2B): a selector beyond the GDT limit and DPL
/// violations give #GP(selector & ~3), a not-present data segment #NP, a
/// not-present stack segment #SS, offsets beyond the limit #GP(0) or, for
/// SS, #SS(0); loads set the accessed bit.
#[test]
fn segment_faults_and_error_codes() {
    let mut r = run_kernel(
        "segment_faults",
        r#"
    DESC 0x30, 0x0000FFFF, 0x00CF1200
    DESC 0x38, 0x60000FFF, 0x00409200
    DESC 0x40, 0x0000FFFF, 0x00CF9000
    DESC 0x48, 0x0000FFFF, 0x00CF9800
    DESC 0x50, 0x00000000, 0x00008200
    DESC 0x58, 0x0000FFFF, 0x00CFB200
    mov ax, 0x80
    EXPECT_FAULT 1f
sf1: mov ds, ax
1:  mov ax, 0x83
    EXPECT_FAULT 1f
sf2: mov ds, ax
1:  mov ax, 0x13
    EXPECT_FAULT 1f
sf3: mov ds, ax
1:  mov ax, 0x30
    EXPECT_FAULT 1f
sf4: mov ds, ax
1:  EXPECT_FAULT 1f
sf5: mov ss, ax
1:  mov ax, 0x23
    EXPECT_FAULT 1f
sf6: mov ss, ax
1:  mov ax, 0x38
    mov es, ax
    mov eax, es:[0xFFC]
    EXPECT_FAULT 1f
sf7: mov eax, es:[0xFFE]
1:  mov ax, 0x38
    mov ss, ax
    mov esp, 0xF00
    EXPECT_FAULT 1f
sf8: mov eax, ss:[0xFFD]
1:  mov ax, 0x10
    mov ss, ax
    mov esp, KSTACK
    xor eax, eax
    mov fs, ax
    EXPECT_FAULT 1f
sf9: mov eax, fs:[0]
1:  mov ax, 0x40
    mov es, ax
    mov eax, es:[SCRATCH]
    EXPECT_FAULT 1f
sf10: mov es:[SCRATCH], eax
1:  mov ax, 0x48
    EXPECT_FAULT 1f
sf11: mov ds, ax
1:  mov ax, 0x50
    EXPECT_FAULT 1f
sf12: mov ds, ax
1:  EXPECT_FAULT 1f
    mov ax, 0x08
    mov ds, ax
    mov eax, [SCRATCH]
sf13: mov [SCRATCH], eax
1:  mov ax, 0x10
    mov ds, ax
    mov ax, 0x5B
    EXPECT_FAULT 1f
sf14: mov gs, ax
1:  mov ax, 0x59
    mov gs, ax
    mov eax, gs
    mov [RESULTS + 0], eax
    mov eax, [GDT_BASE + 0x3C]
    mov [RESULTS + 4], eax
    mov dword ptr [RESULTS + 0x40], offset sf1
    mov dword ptr [RESULTS + 0x44], offset sf2
    mov dword ptr [RESULTS + 0x48], offset sf3
    mov dword ptr [RESULTS + 0x4C], offset sf4
    mov dword ptr [RESULTS + 0x50], offset sf5
    mov dword ptr [RESULTS + 0x54], offset sf6
    mov dword ptr [RESULTS + 0x58], offset sf7
    mov dword ptr [RESULTS + 0x5C], offset sf8
    mov dword ptr [RESULTS + 0x60], offset sf9
    mov dword ptr [RESULTS + 0x64], offset sf10
    mov dword ptr [RESULTS + 0x68], offset sf11
    mov dword ptr [RESULTS + 0x6C], offset sf12
    mov dword ptr [RESULTS + 0x70], offset sf13
    mov dword ptr [RESULTS + 0x74], offset sf14
    EXIT DONE
"#,
    );
    r.assert_done();
    let want_codes = [
        (13, 0x80), // index beyond the GDT limit
        (13, 0x80), // same, RPL bits dropped from the error code
        (13, 0x10), // RPL 3 > DPL 0
        (11, 0x30), // data segment not present
        (12, 0x30), // stack segment not present
        (13, 0x20), // SS: RPL != CPL
        (13, 0),    // limit
        (12, 0),    // limit through SS
        (13, 0),    // null selector used
        (13, 0),    // write to a read-only data segment
        (13, 0x48), // execute-only code into DS
        (13, 0x50), // system descriptor into DS
        (13, 0),    // write through a code segment
        (13, 0x58), // RPL 3 > DPL 1
    ];
    let got = r.fault_sites();
    let want: Vec<(u32, u32, u32)> = want_codes
        .iter()
        .enumerate()
        .map(|(i, &(v, e))| (v, e, r.result(0x10 + i as u32)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.result(0), 0x59, "GS loaded with an RPL <= DPL selector");
    assert_eq!(
        r.result(1),
        0x0040_9300,
        "loading 0x38 set its accessed bit"
    );
    let ex: Vec<(u8, Option<u32>, u32)> = want
        .iter()
        .map(|&(v, e, eip)| (v as u8, Some(e), eip))
        .collect();
    assert_eq!(r.exceptions(), ex);
}

/// #UD (SDM Vol 3A 6.15 "Interrupt 6"): UD2, LOCK on a register
/// destination or on a non-lockable instruction (Vol 2A "LOCK"), MOV to
/// CS, LEA with a register source; a LOCK with a memory destination runs.
#[test]
fn invalid_opcodes() {
    let mut r = run_kernel(
        "invalid_opcodes",
        r#"
    EXPECT_FAULT 1f
ud1: ud2
1:  EXPECT_FAULT 1f
ud2_: .byte 0xF0, 0x01, 0xD8
1:  EXPECT_FAULT 1f
ud3: .byte 0xF0, 0x90
1:  EXPECT_FAULT 1f
ud4: .byte 0x8E, 0xC8
1:  EXPECT_FAULT 1f
ud5: .byte 0x8D, 0xC0
1:  EXPECT_FAULT 1f
ud6: .byte 0xF0, 0x8B, 0x05, 0x00, 0x60, 0x00, 0x00
1:  mov dword ptr [SCRATCH], 41
    lock add dword ptr [SCRATCH], 1
    mov eax, [SCRATCH]
    mov [RESULTS], eax
    mov dword ptr [RESULTS + 0x40], offset ud1
    mov dword ptr [RESULTS + 0x44], offset ud2_
    mov dword ptr [RESULTS + 0x48], offset ud3
    mov dword ptr [RESULTS + 0x4C], offset ud4
    mov dword ptr [RESULTS + 0x50], offset ud5
    mov dword ptr [RESULTS + 0x54], offset ud6
    EXIT DONE
"#,
    );
    r.assert_done();
    let eips: Vec<u32> = (0x10..0x16).map(|i| r.result(i)).collect();
    let got = r.fault_sites();
    assert_eq!(got, eips.iter().map(|&e| (6, NOERR, e)).collect::<Vec<_>>());
    assert_eq!(r.result(0), 42, "LOCK ADD to memory executes");
    assert_eq!(
        r.exceptions(),
        eips.iter().map(|&e| (6, None, e)).collect::<Vec<_>>()
    );
}

/// BOUND raises #BR as a fault with signed bounds; INT3 and INTO are traps
/// whose saved EIP is the next instruction (SDM Vol 3A 6.15, interrupts 3,
/// 4, 5; Vol 2A "BOUND", "INT n/INTO/INT3").
#[test]
fn bound_int3_into() {
    let mut r = run_kernel(
        "bound_int3_into",
        r#"
    mov dword ptr [SCRATCH], 0x10
    mov dword ptr [SCRATCH + 4], 0x20
    mov eax, 0x20
    bound eax, [SCRATCH]
    EXPECT_FAULT 1f
    mov eax, 0x21
br1: bound eax, [SCRATCH]
1:  EXPECT_FAULT 1f
    mov eax, -1
br2: bound eax, [SCRATCH]
1:  mov word ptr [SCRATCH + 8], 0xFFF0
    mov word ptr [SCRATCH + 10], 0x0010
    mov eax, 0xFFFF
    bound ax, [SCRATCH + 8]
    EXPECT_FAULT bp_after
bp_at: int3
bp_after:
    EXPECT_FAULT bp2_after
bp2_at: int 3
bp2_after:
    mov eax, 0x7FFFFFFF
    add eax, 1
    EXPECT_FAULT of_after
of_at: into
of_after:
    xor eax, eax
    into
    mov dword ptr [RESULTS + 0x40], offset br1
    mov dword ptr [RESULTS + 0x44], offset br2
    mov dword ptr [RESULTS + 0x48], offset bp_at
    mov dword ptr [RESULTS + 0x4C], offset bp_after
    mov dword ptr [RESULTS + 0x50], offset bp2_at
    mov dword ptr [RESULTS + 0x54], offset bp2_after
    mov dword ptr [RESULTS + 0x58], offset of_at
    mov dword ptr [RESULTS + 0x5C], offset of_after
    EXIT DONE
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![
            (5, NOERR, a(0)),
            (5, NOERR, a(1)),
            (3, NOERR, a(3)),
            (3, NOERR, a(5)),
            (4, NOERR, a(7))
        ]
    );
    // INT 3 (CD 03) is an INT n; only the one-byte INT3 and INTO are the
    // #BP and #OF exceptions.
    let ex: Vec<_> = r.exceptions().into_iter().filter(|e| e.2 != a(4)).collect();
    assert_eq!(
        ex,
        vec![
            (5, None, a(0)),
            (5, None, a(1)),
            (3, None, a(2)),
            (4, None, a(6))
        ]
    );
}

/// INT n from ring 3 to a gate whose DPL is below the CPL is #GP with the
/// IDT index as error code: vector*8 + 2 (IDT bit), EXT clear (SDM Vol 3A
/// 6.12.1.1, 6.13); the same for INT3 and INTO. A vector beyond the IDT
/// limit is the same #GP in ring 0.
#[test]
fn int_n_gate_privilege_from_ring3() {
    let mut r = run_kernel(
        "int_gate_dpl",
        r#"
    GATE 0x40, h40, 0x8E00
    GATE 0x41, h41, 0xEE00
    CALL_RING3 u_main
    lidt [idt_small]
    EXPECT_FAULT 1f
ig5: int 0x90
1:  mov dword ptr [RESULTS + 0x40], offset ig1
    mov dword ptr [RESULTS + 0x44], offset ig2
    mov dword ptr [RESULTS + 0x48], offset ig3
    mov dword ptr [RESULTS + 0x4C], offset ig4
    mov dword ptr [RESULTS + 0x50], offset ig5
    EXIT DONE
idt_small:
    .word 0x41F
    .long IDT_BASE
h40:
    EXIT 0xBB
h41:
    mov dword ptr [RESULTS], 0x41
    iretd
u_main:
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    EXPECT_FAULT 1f
ig1: int 0x40
1:  int 0x41
    EXPECT_FAULT 1f
ig2: int3
1:  mov eax, 0x7FFFFFFF
    add eax, 1
    EXPECT_FAULT 1f
ig3: into
1:  EXPECT_FAULT 1f
ig4: int 0x90
1:  RET_RING0
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0x41, "the DPL-3 gate is usable from ring 3");
    let got: Vec<(u32, u32, u32, u32)> = r
        .faults()
        .iter()
        .map(|f| (f.vector, f.error, f.eip, f.cs))
        .collect();
    let a = |i: u32| r.result(0x10 + i);
    assert_eq!(
        got,
        vec![
            (13, 0x40 * 8 + 2, a(0), 0x1B),
            (13, 3 * 8 + 2, a(1), 0x1B),
            (13, 4 * 8 + 2, a(2), 0x1B),
            (13, 0x90 * 8 + 2, a(3), 0x1B),
            (13, 0x90 * 8 + 2, a(4), 0x08),
        ]
    );
}

/// Deliveries and IRETs that repeat one already checked: the translator
/// decides them from its memo (engine-interp's `memo.rs`), the interpreter
/// checks each in full, and both must follow every change the guest makes
/// between them. Each round, ring 3 makes a system call (INT 0x30) and
/// divides by zero (#DE, whose handler steps over the DIV); the system
/// call's handler changes, by round: the gate (round 8: another handler,
/// through a trap gate), the TSS's ESP0 (16: the frames move), the
/// accessed bit of the user stack's descriptor (one that only SS holds),
/// which the IRET loads (20: set again by that IRET), the accessed bit of the descriptor the
/// TSS names as SS0 (24: set again by the next delivery), and the user
/// code segment's limit (28: below the user code, so that round's IRET is
/// #GP(0)). The rest is the engines' comparison (`run_from`): the same
/// stop, registers, RAM and event trace on the translator.
#[test]
fn repeated_deliveries_follow_every_change_to_gates_and_descriptors() {
    let body = r#"
    DESC 0x30, 0x0000FFFF, 0x00CF9300
    mov dword ptr [TSS_BASE + 8], 0x30
    GATE 0x30, h30, 0xEE00
    GATE 0x00, hde, 0x8E00
    DESC 0x38, 0x0000FFFF, 0x00CFF200
    EXPECT_FAULT done
    push 0x3B
    push USTACK
    push 0x2
    push 0x1B
    push offset u_main
    iretd
done:
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    xor ebx, ebx
1:  int 0x30
    xor edx, edx
    mov eax, 1
    div ebx
    jmp 1b
hde:
    add dword ptr [esp], 2
    iretd
h30b:
    push ds
    push eax
    push ecx
    push edx
    mov ax, 0x10
    mov ds, ax
    inc dword ptr [RESULTS + 4]
    jmp 2f
h30:
    push ds
    push eax
    push ecx
    push edx
    mov ax, 0x10
    mov ds, ax
2:  inc dword ptr [RESULTS]
    mov ecx, [RESULTS]
    mov [RESULTS + 0x40 + ecx * 4], esp
    cmp ecx, 8
    jne 3f
    GATE 0x30, h30b, 0xEF00
3:  cmp ecx, 16
    jne 3f
    mov dword ptr [TSS_BASE + 4], KSTACK - 0x2000
3:  cmp ecx, 20
    jne 3f
    and byte ptr [GDT_BASE + 0x38 + 5], 0xFE
3:  cmp ecx, 21
    jne 3f
    movzx eax, byte ptr [GDT_BASE + 0x38 + 5]
    mov [RESULTS + 8], eax
3:  cmp ecx, 24
    jne 3f
    and byte ptr [GDT_BASE + 0x30 + 5], 0xFE
3:  cmp ecx, 25
    jne 3f
    movzx eax, byte ptr [GDT_BASE + 0x30 + 5]
    mov [RESULTS + 12], eax
3:  cmp ecx, 28
    jne 3f
    and byte ptr [GDT_BASE + 0x18 + 6], 0x40
3:  pop edx
    pop ecx
    pop eax
    pop ds
iret30:
    iretd
"#;
    let mut r = run_kernel("delivery_memo", body);
    r.assert_done();
    assert_eq!(r.result(0), 28, "system calls");
    assert_eq!(r.result(1), 20, "through the new gate: rounds 9-28");
    assert_eq!(
        r.result(2),
        0xF3,
        "the IRET set the user stack descriptor's accessed bit"
    );
    assert_eq!(r.result(3), 0x93, "the delivery set SS0's accessed bit");
    let frame = |k: u32| r.result(0x10 + k);
    // Below ESP0: the frame (SS, ESP, EFLAGS, CS, EIP) and four pushes.
    for k in 1..=16 {
        assert_eq!(frame(k), KSTACK - 36, "round {k}");
    }
    for k in 17..=28 {
        assert_eq!(frame(k), KSTACK - 0x2000 - 36, "round {k}");
    }
    let got: Vec<(u32, u32, u32)> = r
        .faults()
        .iter()
        .map(|f| (f.vector, f.error, f.cs))
        .collect();
    assert_eq!(got, vec![(13, 0, 0x08)], "the last IRET: #GP(0), in ring 0");
    // The translator decided most of them from the memo (the first of each
    // kind and the four that follow a change are checked in full), and
    // missed it where the gate or a descriptor had changed: round 9's INT
    // (the gate), round 20's IRET (the stack descriptor), round 24's #DE
    // (SS0's descriptor) and round 28's IRET (the code segment's limit).
    let src = format!("{PROLOGUE}\ntest_main:\n{body}\n");
    let (image, [iret30]) = assemble_with_labels("delivery_memo_bt", &src, LOAD, ["iret30"]);
    assert_eq!(r.faults()[0].eip, iret30);
    let m = machine_ram(&image, LOAD, 4 << 20);
    let mut st = machine::cpu::CpuState::multiboot(LOAD, 0, 0);
    st.regs[machine::cpu::ESP] = KSTACK;
    let mut bt = session(m, ringlab::engines::EngineKind::Bt, &st);
    bt.run_until(&limits()).unwrap();
    let stats = bt.stats();
    let hits = stats.get(machine::Counter::DeliveryMemoHits).unwrap();
    let misses = stats.get(machine::Counter::DeliveryMemoMisses).unwrap();
    assert_eq!((hits, misses), (103, 4));
}

/// Task-switch checks (SDM Vol 3A 7.3, and JMP/CALL in Vol 2A): a TSS whose
/// limit is below 0x67 is #TS(selector); a busy TSS is #GP(selector); a
/// not-present TSS #NP(selector). Nothing of the current task changes.
#[test]
fn bad_tss_faults() {
    let mut r = run_kernel(
        "bad_tss",
        r#"
    DESC 0x30, 0x51000050, 0x00008900
    DESC 0x38, 0x51000067, 0x00000900
    EXPECT_FAULT 1f
bt1: jmp 0x30:0
1:  EXPECT_FAULT 1f
bt2: jmp 0x28:0
1:  EXPECT_FAULT 1f
bt3: call 0x28:0
1:  EXPECT_FAULT 1f
bt4: jmp 0x38:0
1:  str ax
    movzx eax, ax
    mov [RESULTS], eax
    mov eax, [GDT_BASE + 0x2C]
    mov [RESULTS + 4], eax
    mov eax, [GDT_BASE + 0x34]
    mov [RESULTS + 8], eax
    mov dword ptr [RESULTS + 0x40], offset bt1
    mov dword ptr [RESULTS + 0x44], offset bt2
    mov dword ptr [RESULTS + 0x48], offset bt3
    mov dword ptr [RESULTS + 0x4C], offset bt4
    EXIT DONE
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![
            (10, 0x30, a(0)),
            (13, 0x28, a(1)),
            (13, 0x28, a(2)),
            (11, 0x38, a(3))
        ]
    );
    assert_eq!(r.result(0), 0x28, "TR unchanged");
    assert_eq!(r.result(1), 0x0000_8B00, "current TSS still busy");
    assert_eq!(
        r.result(2),
        0x0000_8900,
        "the short TSS was not marked busy"
    );
}

// ---- 3. Ring transitions ----------------------------------------------------

/// IRET to an outer ring pops SS:ESP and nulls the data segment registers
/// whose DPL is below the new CPL (SDM Vol 2A "IRET", RETURN-TO-OUTER-
/// PRIVILEGE-LEVEL); INT 0x80 through a DPL-3 trap gate switches to the
/// TSS ring-0 stack and pushes SS, ESP, EFLAGS, CS, EIP (Vol 3A 6.12.1,
/// figure 6-4); IRET goes back.
#[test]
fn iret_to_ring3_and_int80_back() {
    let mut r = run_kernel(
        "ring3_int80",
        r#"
    GATE 0x80, sys80, 0xEF00
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov ax, 0x23
    mov gs, ax
    mov dword ptr [RING0_CONT], offset back
    push 0x23
    push USTACK
    push 0x2
    push 0x1B
    push offset u_main
r3_iret:
    iretd
u_main:
    mov eax, cs
    mov ebx, ss
    mov ecx, ds
    mov edx, es
    mov esi, fs
    mov edi, gs
    mov ebp, esp
    push 0x23
    pop ds
    mov [RESULTS + 0], eax
    mov [RESULTS + 4], ebx
    mov [RESULTS + 8], ecx
    mov [RESULTS + 12], edx
    mov [RESULTS + 16], esi
    mov [RESULTS + 20], edi
    mov [RESULTS + 24], ebp
    mov eax, 0xCAFE
r3_int:
    int 0x80
r3_after:
    mov [RESULTS + 28], eax
    mov [RESULTS + 32], esp
    mov eax, ss
    mov [RESULTS + 36], eax
r3_ret0:
    RET_RING0
sys80:
    mov [RESULTS + 40], esp
    mov ebx, [esp]
    mov [RESULTS + 44], ebx
    mov ebx, [esp + 4]
    mov [RESULTS + 48], ebx
    mov ebx, [esp + 8]
    mov [RESULTS + 52], ebx
    mov ebx, [esp + 12]
    mov [RESULTS + 56], ebx
    mov ebx, [esp + 16]
    mov [RESULTS + 60], ebx
    mov ebx, cs
    mov [RESULTS + 64], ebx
    mov ebx, ss
    mov [RESULTS + 68], ebx
    inc eax
r0_iret:
    iretd
back:
    mov dword ptr [RESULTS + 0x80], offset r3_iret
    mov dword ptr [RESULTS + 0x84], offset r3_int
    mov dword ptr [RESULTS + 0x88], offset r3_after
    mov dword ptr [RESULTS + 0x8C], offset r0_iret
    mov dword ptr [RESULTS + 0x90], offset r3_ret0
    EXIT DONE
"#,
    );
    r.assert_done();
    let v: Vec<u32> = (0..18).map(|i| r.result(i)).collect();
    let a = |i: u32| r.result(0x20 + i);
    assert_eq!(
        &v[0..7],
        &[0x1B, 0x23, 0, 0, 0, 0x23, USTACK],
        "ring 3: CS, SS, DS/ES/FS nulled, GS kept, ESP"
    );
    assert_eq!(v[7], 0xCAFF, "the handler ran");
    assert_eq!(&v[8..10], &[USTACK, 0x23], "back on the ring-3 stack");
    assert_eq!(
        v[10],
        KSTACK - 20,
        "stack switched to TSS.ESP0, five dwords pushed"
    );
    assert_eq!(
        &v[11..16],
        &[a(2), 0x1B, 0x2, USTACK, 0x23],
        "EIP, CS, EFLAGS, ESP, SS"
    );
    assert_eq!(
        &v[16..18],
        &[0x08, 0x10],
        "ring 0: CS and SS from the gate and the TSS"
    );
    let pc = r.priv_changes();
    assert_eq!(
        pc,
        vec![
            (0, 3, PrivCause::Iret, a(0)),
            (3, 0, PrivCause::SoftwareInterrupt, a(1)),
            (0, 3, PrivCause::Iret, a(3)),
            (3, 0, PrivCause::SoftwareInterrupt, a(4)),
        ],
        "privilege changes, each at the address of the instruction that caused it"
    );
}

/// Sensitive instructions in ring 3 with IOPL 0 (SDM Vol 1 19.5-19.6, Vol
/// 2A "CLI", "POPF"): CLI/STI are #GP(0); IN/OUT consult the TSS I/O
/// permission bitmap, every bit of a multi-byte access; POPF silently keeps
/// IF and IOPL. With IOPL 3 CLI works and the bitmap is not consulted, but
/// POPF still cannot change IOPL outside ring 0.
#[test]
fn ring3_cli_io_bitmap_popf() {
    let mut r = run_kernel(
        "ring3_io",
        r#"
    mov byte ptr [TSS_BASE + 0x68 + 0x3F8 / 8], 0
    CALL_RING3 u_main, 0x202
    CALL_RING3 u_iopl3, 0x3202
    mov word ptr [TSS_BASE + 0x66], 0xF000
    CALL_RING3 u_nomap, 0x202
    mov dword ptr [RESULTS + 0x54], offset c6
    mov dword ptr [RESULTS + 0x40], offset c1
    mov dword ptr [RESULTS + 0x44], offset c2
    mov dword ptr [RESULTS + 0x48], offset c3
    mov dword ptr [RESULTS + 0x4C], offset c4
    mov dword ptr [RESULTS + 0x50], offset c5
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    EXPECT_FAULT 1f
c1: cli
1:  EXPECT_FAULT 1f
c2: sti
1:  mov dx, 0x3FB
    mov al, 3
    out dx, al
    mov dx, 0x3F8
    mov al, 'R'
    out dx, al
    mov dx, 0x3FD
    in al, dx
    EXPECT_FAULT 1f
c3: out 0x80, al
1:  EXPECT_FAULT 1f
    mov dx, 0x3FF
c4: in ax, dx
1:  EXPECT_FAULT 1f
    mov dx, 0x3F7
c5: out dx, al
1:  push 0x3003
    popfd
    pushfd
    pop eax
    mov [RESULTS + 0], eax
    push 0x2
    popfd
    pushfd
    pop eax
    mov [RESULTS + 4], eax
    RET_RING0
u_iopl3:
    mov ax, 0x23
    mov ds, ax
    cli
    pushfd
    pop eax
    mov [RESULTS + 8], eax
    mov al, 0x55
    out 0x80, al
    sti
    push 0x2
    popfd
    pushfd
    pop eax
    mov [RESULTS + 12], eax
    RET_RING0
u_nomap:
    mov ax, 0x23
    mov ds, ax
    mov dx, 0x3F8
    EXPECT_FAULT 1f
c6: out dx, al
1:  RET_RING0
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![
            (13, 0, a(0)),
            (13, 0, a(1)),
            (13, 0, a(2)),
            (13, 0, a(3)),
            (13, 0, a(4)),
            (13, 0, a(5)),
        ],
        "CLI, STI, OUT 0x80, IN AX from 0x3FF (0x400 denied), OUT 0x3F7, and COM1 once the \
         I/O map base lies beyond the TSS limit (no bitmap: everything denied)"
    );
    assert_eq!(r.m().serial_output(), b"R", "COM1 is allowed by the bitmap");
    assert_eq!(r.m().post_codes(), &[0x55], "IOPL 3 bypasses the bitmap");
    assert_eq!(
        r.result(0),
        0x203,
        "POPF at CPL 3, IOPL 0: IF kept, IOPL not set, CF set"
    );
    assert_eq!(r.result(1), 0x202, "POPF cannot clear IF");
    assert_eq!(r.result(2), 0x3002, "CLI at CPL 3 with IOPL 3");
    assert_eq!(
        r.result(3),
        0x3002,
        "POPF at CPL 3 = IOPL: IF changes, IOPL does not"
    );
}

/// A far CALL through a DPL-3 32-bit call gate with a parameter count of 2
/// to ring 0: the inner stack comes from the TSS and holds the caller's
/// SS, ESP, the two parameters copied in order, CS and EIP (SDM Vol 3A
/// 5.8.5, figure 5-13); RETF 8 returns to ring 3, releasing the parameters
/// on both stacks and nulling ES, which was loaded with a DPL-0 selector.
#[test]
fn call_gate_with_parameters_and_retf() {
    let mut r = run_kernel(
        "call_gate",
        r#"
    mov eax, offset cg_target
    mov edx, eax
    and eax, 0xFFFF
    or eax, 0x00080000
    and edx, 0xFFFF0000
    or edx, 0xEC02
    mov [GDT_BASE + 0x30], eax
    mov [GDT_BASE + 0x34], edx
    CALL_RING3 u_main
    mov dword ptr [RESULTS + 0x80], offset cg_call
    mov dword ptr [RESULTS + 0x84], offset cg_ret
    mov dword ptr [RESULTS + 0x88], offset cg_retf
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    push 0x1111
    push 0x2222
cg_call:
    call 0x33:0
cg_ret:
    mov [RESULTS + 0], esp
    mov eax, cs
    mov [RESULTS + 4], eax
    mov eax, ss
    mov [RESULTS + 8], eax
    mov eax, ds
    mov [RESULTS + 12], eax
    mov eax, es
    mov [RESULTS + 16], eax
    RET_RING0
cg_target:
    mov [RESULTS + 20], esp
    mov eax, [esp]
    mov [RESULTS + 24], eax
    mov eax, [esp + 4]
    mov [RESULTS + 28], eax
    mov eax, [esp + 8]
    mov [RESULTS + 32], eax
    mov eax, [esp + 12]
    mov [RESULTS + 36], eax
    mov eax, [esp + 16]
    mov [RESULTS + 40], eax
    mov eax, [esp + 20]
    mov [RESULTS + 44], eax
    mov eax, cs
    mov [RESULTS + 48], eax
    mov eax, ss
    mov [RESULTS + 52], eax
    mov ax, 0x10
    mov es, ax
cg_retf:
    retf 8
"#,
    );
    r.assert_done();
    let v: Vec<u32> = (0..14).map(|i| r.result(i)).collect();
    let a = |i: u32| r.result(0x20 + i);
    assert_eq!(
        &v[0..5],
        &[USTACK, 0x1B, 0x23, 0x23, 0],
        "after RETF 8: ESP, CS, SS, DS kept, ES nulled"
    );
    assert_eq!(v[5], KSTACK - 24, "inner stack: 6 dwords");
    assert_eq!(
        &v[6..12],
        &[a(1), 0x1B, 0x2222, 0x1111, USTACK - 8, 0x23],
        "EIP, CS, parameters in caller order, caller ESP, caller SS"
    );
    assert_eq!(&v[12..14], &[0x08, 0x10]);
    let pc = r.priv_changes();
    assert_eq!(pc.len(), 4, "{pc:?}");
    assert_eq!(
        &pc[1..3],
        &[
            (3, 0, PrivCause::CallGate, a(0)),
            (0, 3, PrivCause::FarReturn, a(2))
        ]
    );
}

/// SYSENTER loads flat ring-0 CS/SS from IA32_SYSENTER_CS (and +8), ESP and
/// EIP from the MSRs and clears IF; SYSEXIT returns to ring 3 with CS =
/// SYSENTER_CS+16, SS = +24, ESP = ECX, EIP = EDX (SDM Vol 2B).
#[test]
fn sysenter_sysexit() {
    let mut r = run_kernel(
        "sysenter",
        r#"
    mov ecx, 0x174
    xor edx, edx
    mov eax, 0x08
    wrmsr
    mov ecx, 0x175
    mov eax, KSTACK - 0x100
    wrmsr
    mov ecx, 0x176
    mov eax, offset se_target
    wrmsr
    CALL_RING3 u_main, 0x202
    mov dword ptr [RESULTS + 0x80], offset se_enter
    mov dword ptr [RESULTS + 0x84], offset se_exit
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov ecx, esp
    mov edx, offset se_back
se_enter:
    sysenter
se_back:
    mov [RESULTS + 0], esp
    mov eax, cs
    mov [RESULTS + 4], eax
    mov eax, ss
    mov [RESULTS + 8], eax
    pushfd
    pop eax
    mov [RESULTS + 12], eax
    RET_RING0
se_target:
    mov [RESULTS + 16], esp
    mov eax, cs
    mov [RESULTS + 20], eax
    mov eax, ss
    mov [RESULTS + 24], eax
    pushfd
    pop eax
    mov [RESULTS + 28], eax
se_exit:
    sysexit
"#,
    );
    r.assert_done();
    let v: Vec<u32> = (0..8).map(|i| r.result(i)).collect();
    assert_eq!(
        v,
        vec![USTACK, 0x1B, 0x23, 0x2, KSTACK - 0x100, 0x08, 0x10, 0x2]
    );
    let pc = r.priv_changes();
    let a = |i: u32| r.result(0x20 + i);
    assert_eq!(pc.len(), 4, "{pc:?}");
    assert_eq!(
        &pc[1..3],
        &[
            (3, 0, PrivCause::Sysenter, a(0)),
            (0, 3, PrivCause::Sysexit, a(1))
        ]
    );
}

// ---- 4. Paging ----------------------------------------------------------------

/// 32-bit paging (SDM Vol 3A 4.3, 4.6, 4.7, 4.8, 4.10): user/supervisor and
/// read/write protection with the page-fault error code (P, W/R, U/S) and
/// CR2; accessed and dirty bits; CR0.WP; 4 MiB pages with CR4.PSE; INVLPG
/// and MOV CR3 making changed entries visible. INVLPG on any address of a
/// 4 MiB page must drop every cached translation of that page (4.10.2.3,
/// 4.10.4.1: "flushes all TLB entries for that page").
#[test]
fn paging_protection_ad_bits_and_invlpg() {
    let mut r = run_kernel_ram(
        "paging",
        r#"
.set PD, 0x20000
.set PT0, 0x21000
.set PT1, 0x22000
    mov dword ptr [0x300000], 0x0A0A0A0A
    mov dword ptr [0x301000], 0x0B0B0B0B
    mov dword ptr [0x304000], 0xAAAA
    mov dword ptr [0x305000], 0xBBBB
    mov dword ptr [0x401000], 0x11111111
    mov dword ptr [0x801000], 0x22222222
    mov edi, PD
    xor eax, eax
    mov ecx, 3 * 1024
    rep stosd
    mov edi, PT0
    mov eax, 0x7
    mov ecx, 1024
1:  stosd
    add eax, 0x1000
    loop 1b
    mov dword ptr [PD + 0], PT0 | 7
    mov dword ptr [PD + 4], PT1 | 7
    mov dword ptr [PT1 + 0 * 4], 0x300000 | 5
    mov dword ptr [PT1 + 1 * 4], 0x301000 | 3
    mov dword ptr [PT1 + 3 * 4], 0x303000 | 7
    mov dword ptr [PT1 + 4 * 4], 0x304000 | 7
    mov dword ptr [PD + 8], 0x400000 | 0x83
    mov eax, PD
    mov cr3, eax
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    CALL_RING3 u_main
    mov dword ptr [0x400004], 0x5EED
    mov eax, [0x300004]
    mov [RESULTS + 0x20], eax
    mov eax, cr0
    or eax, 0x10000
    mov cr0, eax
    EXPECT_FAULT 1f
pg7: mov dword ptr [0x400008], 1
1:  EXPECT_FAULT 1f
pg8: mov eax, [0x402000]
1:  EXPECT_FAULT 1f
pg9: mov dword ptr [0x402010], eax
1:  mov eax, [PT1 + 3 * 4]
    mov [RESULTS + 0x24], eax
    mov eax, [0x403000]
    mov eax, [PT1 + 3 * 4]
    mov [RESULTS + 0x28], eax
    mov dword ptr [0x403000], 1
    mov eax, [PT1 + 3 * 4]
    mov [RESULTS + 0x2C], eax
    mov eax, [PD + 4]
    mov [RESULTS + 0x30], eax
    mov eax, [0x801000]
    mov [RESULTS + 0x34], eax
    mov dword ptr [0x802000], 0x77
    mov eax, [PD + 8]
    mov [RESULTS + 0x38], eax
    mov eax, [0x404000]
    mov [RESULTS + 0x3C], eax
    mov dword ptr [PT1 + 4 * 4], 0x305000 | 7
    invlpg [0x404000]
    mov eax, [0x404000]
    mov [RESULTS + 0x40], eax
    mov eax, [0x404000]
    mov dword ptr [PT1 + 4 * 4], 0x304000 | 7
    mov eax, cr3
    mov cr3, eax
    mov eax, [0x404000]
    mov [RESULTS + 0x44], eax
    mov eax, [0x801000]
    mov dword ptr [PD + 8], 0x800000 | 0x83
    invlpg [0x800000]
    mov eax, [0x801000]
    mov [RESULTS + 0x48], eax
    mov dword ptr [RESULTS + 0x80], offset pg1
    mov dword ptr [RESULTS + 0x84], offset pg2
    mov dword ptr [RESULTS + 0x88], offset pg3
    mov dword ptr [RESULTS + 0x8C], offset pg4
    mov dword ptr [RESULTS + 0x90], offset pg6
    mov dword ptr [RESULTS + 0x94], offset pg7
    mov dword ptr [RESULTS + 0x98], offset pg8
    mov dword ptr [RESULTS + 0x9C], offset pg9
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    mov eax, [0x400000]
    mov [RESULTS + 0], eax
    EXPECT_FAULT 1f
pg1: mov dword ptr [0x400000], 1
1:  EXPECT_FAULT 1f
pg2: mov eax, [0x401000]
1:  EXPECT_FAULT 1f
pg3: mov eax, [0x402000]
1:  EXPECT_FAULT 1f
pg4: mov dword ptr [0x402FFE], eax
1:  EXPECT_FAULT 1f
    mov eax, 0x401000
    jmp eax
1:  EXPECT_FAULT 1f
pg6: mov dword ptr [0x3FFFFE], 0x12345678
1:  RET_RING0
"#,
        16 << 20,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x20 + i);
    let got: Vec<(u32, u32, u32, u32, u32)> = r
        .faults()
        .iter()
        .map(|f| (f.vector, f.error, f.cr2, f.eip, f.cs))
        .collect();
    assert_eq!(
        got,
        vec![
            (14, 7, 0x40_0000, a(0), 0x1B),      // user write, read-only user page
            (14, 5, 0x40_1000, a(1), 0x1B),      // user read, supervisor page
            (14, 4, 0x40_2000, a(2), 0x1B),      // user read, not present
            (14, 6, 0x40_2FFE, a(3), 0x1B),      // user write, not present
            (14, 5, 0x40_1000, 0x40_1000, 0x1B), // user fetch, supervisor page
            (14, 7, 0x40_0000, a(4), 0x1B),      // write crossing into a read-only page
            (14, 3, 0x40_0008, a(5), 0x08),      // supervisor write, read-only, CR0.WP=1
            (14, 0, 0x40_2000, a(6), 0x08),      // supervisor read, not present
            (14, 2, 0x40_2010, a(7), 0x08),      // supervisor write, not present
        ]
    );
    assert_eq!(
        r.result(0),
        0x0A0A_0A0A,
        "user read of a read-only user page"
    );
    assert_eq!(
        r.u32_at(0x3F_FFFC),
        0,
        "the faulting page-crossing write stored nothing"
    );
    assert_eq!(
        r.result(8),
        0x5EED,
        "CR0.WP=0: supervisor writes ignore R/W"
    );
    assert_eq!(r.result(9), 0x30_3007, "PTE before any access");
    assert_eq!(r.result(10), 0x30_3027, "read sets A");
    assert_eq!(r.result(11), 0x30_3067, "write sets D");
    assert_eq!(r.result(12), 0x2_2027, "PDE accessed");
    assert_eq!(r.result(13), 0x1111_1111, "4 MiB page read");
    assert_eq!(r.result(14), 0x40_00E3, "4 MiB PDE gets A and D");
    assert_eq!(r.result(15), 0xAAAA);
    assert_eq!(r.result(16), 0xBBBB, "INVLPG makes the new PTE visible");
    assert_eq!(r.result(17), 0xAAAA, "MOV CR3 flushes the TLB");
    assert_eq!(
        r.result(18),
        0x2222_2222,
        "INVLPG of 0x800000 flushes the whole 4 MiB page, including 0x801000"
    );
}

// ---- 5. Hardware task switching -----------------------------------------------

/// JMP to a TSS descriptor and back: the old task's busy bit is cleared,
/// no back link, NT clear, registers saved into and loaded from the TSSs,
/// CR0.TS set. CALL through a task gate: NT set, back link written, both
/// tasks busy; IRET with NT returns along the link and clears the
/// returning task's busy bit and saved NT. An exception through a task
/// gate runs its handler as a nested task (SDM Vol 3A 7.3, 7.4, 6.11.2).
#[test]
fn task_switches_jmp_call_iret_and_task_gate() {
    let mut r = run_kernel(
        "tasks",
        r#"
.set TSSB, 0x5100
.set TSSC, 0x5200
    DESC 0x30, ((TSSB << 16) | 0x67), 0x00008900
    DESC 0x38, (0x30 << 16), 0x00008500
    DESC 0x40, ((TSSC << 16) | 0x67), 0x00008900
    mov edi, TSSB
    xor eax, eax
    mov ecx, 0x200 / 4
    rep stosd
    mov dword ptr [TSSB + 0x20], offset task_b
    mov dword ptr [TSSB + 0x24], 0x2
    mov dword ptr [TSSB + 0x28], 0x0B0B0B0B
    mov dword ptr [TSSB + 0x38], 0x60000
    mov dword ptr [TSSB + 0x48], 0x10
    mov dword ptr [TSSB + 0x4C], 0x08
    mov dword ptr [TSSB + 0x50], 0x10
    mov dword ptr [TSSB + 0x54], 0x10
    mov dword ptr [TSSB + 0x58], 0x10
    mov dword ptr [TSSB + 0x5C], 0x10
    mov word ptr [TSSB + 0x66], 0x68
    mov dword ptr [TSSC + 0x20], offset task_ud
    mov dword ptr [TSSC + 0x24], 0x2
    mov dword ptr [TSSC + 0x38], 0x50000
    mov dword ptr [TSSC + 0x48], 0x10
    mov dword ptr [TSSC + 0x4C], 0x08
    mov dword ptr [TSSC + 0x50], 0x10
    mov dword ptr [TSSC + 0x54], 0x10
    mov dword ptr [TSSC + 0x58], 0x10
    mov dword ptr [TSSC + 0x5C], 0x10
    mov word ptr [TSSC + 0x66], 0x68
    mov eax, 0xA0A0A0A0
    jmp 0x30:0
    mov [RESULTS + 0x00], eax
    mov eax, [GDT_BASE + 0x2C]
    mov [RESULTS + 0x04], eax
    mov eax, [GDT_BASE + 0x34]
    mov [RESULTS + 0x08], eax
    mov eax, cr0
    and eax, 8
    mov [RESULTS + 0x0C], eax
    str ax
    movzx eax, ax
    mov [RESULTS + 0x10], eax
    mov dword ptr [TSSB + 0x20], offset task_b2
    clts
    mov eax, 0xA1A1A1A1
    call 0x38:0
    mov [RESULTS + 0x60], eax
    pushfd
    pop eax
    and eax, 0x4000
    mov [RESULTS + 0x30], eax
    mov eax, [GDT_BASE + 0x34]
    mov [RESULTS + 0x34], eax
    mov eax, [GDT_BASE + 0x2C]
    mov [RESULTS + 0x38], eax
    mov eax, [TSSB + 0x24]
    and eax, 0x4000
    mov [RESULTS + 0x3C], eax
    mov eax, [TSSB]
    mov [RESULTS + 0x40], eax
    mov dword ptr [IDT_BASE + 6 * 8], 0x00400000
    mov dword ptr [IDT_BASE + 6 * 8 + 4], 0x00008500
    mov eax, 0xA2A2A2A2
tk_ud:
    ud2
    mov [RESULTS + 0x64], eax
    mov eax, [GDT_BASE + 0x44]
    mov [RESULTS + 0x68], eax
    mov dword ptr [RESULTS + 0x80], offset tk_ud
    EXIT DONE
task_b:
    mov [RESULTS + 0x14], eax
    str ax
    movzx eax, ax
    mov [RESULTS + 0x18], eax
    mov eax, [GDT_BASE + 0x2C]
    mov [RESULTS + 0x1C], eax
    mov eax, [GDT_BASE + 0x34]
    mov [RESULTS + 0x20], eax
    mov eax, [TSSB]
    mov [RESULTS + 0x24], eax
    pushfd
    pop eax
    and eax, 0x4000
    mov [RESULTS + 0x28], eax
    mov eax, [TSS_BASE + 0x28]
    mov [RESULTS + 0x2C], eax
    jmp 0x28:0
task_b2:
    pushfd
    pop eax
    and eax, 0x4000
    mov [RESULTS + 0x44], eax
    mov eax, [TSSB]
    mov [RESULTS + 0x48], eax
    mov eax, [GDT_BASE + 0x2C]
    mov [RESULTS + 0x4C], eax
    mov eax, [GDT_BASE + 0x34]
    mov [RESULTS + 0x50], eax
    iretd
task_ud:
    mov eax, [TSSC]
    mov [RESULTS + 0x54], eax
    pushfd
    pop eax
    and eax, 0x4000
    mov [RESULTS + 0x58], eax
    mov eax, [TSS_BASE + 0x20]
    mov [RESULTS + 0x5C], eax
    add dword ptr [TSS_BASE + 0x20], 2
    iretd
    jmp task_ud
"#,
    );
    r.assert_done();
    let v = |off: u32| r.result(off / 4);
    let tk_ud = r.result(0x20);
    // JMP to B.
    assert_eq!(v(0x14), 0x0B0B_0B0B, "B's EAX from its TSS");
    assert_eq!(v(0x18), 0x30, "TR = B");
    assert_eq!(v(0x1C), 0x8900, "JMP cleared A's busy bit");
    assert_eq!(v(0x20), 0x8B00, "B busy");
    assert_eq!(v(0x24), 0, "JMP writes no back link");
    assert_eq!(v(0x28), 0, "JMP leaves NT clear");
    assert_eq!(v(0x2C), 0xA0A0_A0A0, "A's EAX saved in A's TSS");
    // JMP back to A.
    assert_eq!(v(0x00), 0xA0A0_A0A0, "A's EAX restored");
    assert_eq!(v(0x04), 0x8B00, "A busy again");
    assert_eq!(v(0x08), 0x8900, "B no longer busy");
    assert_eq!(v(0x0C), 8, "CR0.TS set by the task switch");
    assert_eq!(v(0x10), 0x28, "TR = A");
    // CALL through the task gate.
    assert_eq!(v(0x44), 0x4000, "CALL sets NT in the new task");
    assert_eq!(v(0x48), 0x28, "back link to A");
    assert_eq!(v(0x4C), 0x8B00, "CALL keeps A busy");
    assert_eq!(v(0x50), 0x8B00, "B busy");
    // IRET back.
    assert_eq!(v(0x60), 0xA1A1_A1A1, "A's EAX restored by the IRET");
    assert_eq!(v(0x30), 0, "A's NT");
    assert_eq!(v(0x34), 0x8900, "IRET cleared B's busy bit");
    assert_eq!(v(0x38), 0x8B00, "A busy");
    assert_eq!(v(0x3C), 0, "NT cleared in B's saved EFLAGS");
    assert_eq!(v(0x40), 0x28, "the back link stays in B's TSS");
    // #UD through a task gate.
    assert_eq!(v(0x54), 0x28, "handler task's back link");
    assert_eq!(v(0x58), 0x4000, "handler task runs nested");
    assert_eq!(v(0x5C), tk_ud, "A's saved EIP is the faulting UD2");
    assert_eq!(
        v(0x64),
        0xA2A2_A2A2,
        "A resumed after the handler task returned"
    );
    assert_eq!(v(0x68), 0x8900, "handler task no longer busy");
    assert_eq!(r.exceptions(), vec![(6, None, tk_ud)]);
    assert!(r.faults().is_empty(), "{:?}", r.faults());
}

// ---- 6. Virtual-8086 mode -------------------------------------------------------

/// IRETD from ring 0 with EFLAGS.VM enters virtual-8086 mode; there, with
/// IOPL < 3, INT n, CLI and HLT are #GP(0) (SDM Vol 3A 20.2.7, 20.3.3, no
/// VME). The exception goes to the ring-0 monitor on the TSS stack with the
/// V86 frame GS, FS, DS, ES, SS, ESP, EFLAGS, CS, EIP, error code, and the
/// data segment registers null (20.3.1.1, figure 20-5). The monitor skips
/// the instruction and IRETs back.
#[test]
fn v86_int_n_traps_to_monitor() {
    let mut r = run_kernel(
        "v86",
        r#"
.set V86_CODE, 0x9000
    GATE 13, v86_monitor, 0x8E00
    mov esi, offset v86_start
    mov edi, V86_CODE
    mov ecx, offset v86_end
    sub ecx, esi
    rep movsb
    push 0x4444
    push 0x3333
    push 0x0900
    push 0x1111
    push 0x0A00
    push 0x0800
    push 0x20002
    push 0x0900
    push 0
v86_iret:
    iretd
v86_monitor:
    push gs
    push fs
    push ds
    push es
    pushad
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ebx, [RESULTS + 0x1FC]
    mov edi, ebx
    shl edi, 6
    add edi, RESULTS
    lea esi, [esp + 32]
    mov ecx, 14
    rep movsd
    mov eax, [esp + 28]
    mov [edi], eax
    lea eax, [esp + 48]
    mov [edi + 4], eax
    inc dword ptr [RESULTS + 0x1FC]
    cmp ebx, 2
    jae 1f
    mov ecx, 2
    sub ecx, ebx
    add [esp + 52], ecx
    popad
    pop es
    pop ds
    pop fs
    pop gs
    add esp, 4
v86_mon_iret:
    iretd
1:  mov dword ptr [RESULTS + 0x1F0], offset v86_iret
    mov dword ptr [RESULTS + 0x1F4], offset v86_mon_iret
    EXIT DONE
.code16
v86_start:
    mov ax, 0x1234
    mov bx, 0x5678
    int 0x21
    cli
    mov [0x100], ax
    hlt
v86_end:
.code32
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0x1FC / 4), 3, "three traps into the monitor");
    let frame = |k: u32| -> Vec<u32> { (0..16).map(|i| r.result(16 * k + i)).collect() };
    let lo16 = |v: Vec<u32>| -> Vec<u32> {
        v.iter()
            .enumerate()
            .map(|(i, &x)| {
                if matches!(i, 0..=3 | 6 | 9..=14) {
                    x & 0xFFFF
                } else {
                    x
                }
            })
            .collect()
    };
    let want = |ip: u32| -> Vec<u32> {
        vec![
            0,
            0,
            0,
            0,        // ES, DS, FS, GS in the monitor: null
            0,        // error code
            ip,       // EIP of the faulting instruction
            0x0900,   // CS
            0x3_0002, // EFLAGS with VM, and RF as for every fault (SDM 17.3.1.1)
            0x0800,
            0x0A00, // ESP, SS
            0x1111,
            0x0900,
            0x3333,
            0x4444,      // ES, DS, FS, GS of the V86 task
            0x1234,      // AX survives
            KSTACK - 40, // ten dwords on the TSS.ESP0 stack
        ]
    };
    assert_eq!(lo16(frame(0)), want(6), "INT 0x21");
    assert_eq!(lo16(frame(1)), want(8), "CLI");
    assert_eq!(lo16(frame(2)), want(12), "HLT");
    assert_eq!(
        r.u32_at(0x9100) & 0xFFFF,
        0x1234,
        "V86 store through DS=0x0900"
    );
    assert_eq!(
        r.exceptions(),
        vec![(13, Some(0), 6), (13, Some(0), 8), (13, Some(0), 12)]
    );
    let iret = r.result(0x1F0 / 4);
    let mon_iret = r.result(0x1F4 / 4);
    assert_eq!(
        r.priv_changes(),
        vec![
            (0, 3, PrivCause::Iret, iret),
            (3, 0, PrivCause::Exception, 6),
            (0, 3, PrivCause::Iret, mon_iret),
            (3, 0, PrivCause::Exception, 8),
            (0, 3, PrivCause::Iret, mon_iret),
            (3, 0, PrivCause::Exception, 12),
        ]
    );
}

// ---- 7. Double and triple faults --------------------------------------------------

/// A #GP whose IDT gate is not present raises #NP(13*8 + IDT + EXT) while
/// delivering it; two contributory exceptions make a #DF with error code 0
/// (SDM Vol 3A 6.15 "Interrupt 8", table 6-5).
#[test]
fn double_fault_from_not_present_gate() {
    let mut r = run_kernel(
        "double_fault",
        r#"
    and dword ptr [IDT_BASE + 13 * 8 + 4], 0xFFFF7FFF
    mov ax, 0x80
    EXPECT_FAULT 1f
df1: mov ds, ax
1:  mov dword ptr [RESULTS], offset df1
    EXIT DONE
"#,
    );
    r.assert_done();
    let df1 = r.result(0);
    assert_eq!(r.fault_codes(), vec![(8, 0)], "only the #DF handler ran");
    // The trace shows the whole story: the #GP, the #NP raised while
    // delivering it, and the #DF they make together.
    assert_eq!(
        r.exceptions(),
        vec![
            (13, Some(0x80), df1),
            (11, Some(13 * 8 + 2 + 1), df1),
            (8, Some(0), df1)
        ]
    );
}

/// The #DF handler as a task (the usual way to survive a double fault
/// caused by a bad stack): the handler task gets error code 0 on its
/// stack, NT set and a back link to the faulting task (SDM Vol 3A 6.15,
/// 7.4).
#[test]
fn double_fault_through_task_gate() {
    let mut r = run_kernel(
        "double_fault_task",
        r#"
.set TSSD, 0x5100
    DESC 0x30, ((TSSD << 16) | 0x67), 0x00008900
    mov edi, TSSD
    xor eax, eax
    mov ecx, 0x68 / 4
    rep stosd
    mov dword ptr [TSSD + 0x20], offset df_task
    mov dword ptr [TSSD + 0x24], 0x2
    mov dword ptr [TSSD + 0x38], 0x60000
    mov dword ptr [TSSD + 0x48], 0x10
    mov dword ptr [TSSD + 0x4C], 0x08
    mov dword ptr [TSSD + 0x50], 0x10
    mov dword ptr [TSSD + 0x54], 0x10
    mov dword ptr [TSSD + 0x58], 0x10
    mov dword ptr [TSSD + 0x5C], 0x10
    mov dword ptr [IDT_BASE + 8 * 8], 0x00300000
    mov dword ptr [IDT_BASE + 8 * 8 + 4], 0x00008500
    and dword ptr [IDT_BASE + 13 * 8 + 4], 0xFFFF7FFF
    mov ax, 0x80
df2: mov ds, ax
    EXIT 0xBB
df_task:
    mov [RESULTS + 0], esp
    mov eax, [esp]
    mov [RESULTS + 4], eax
    mov eax, [TSSD]
    mov [RESULTS + 8], eax
    pushfd
    pop eax
    and eax, 0x4000
    mov [RESULTS + 12], eax
    str ax
    movzx eax, ax
    mov [RESULTS + 16], eax
    mov dword ptr [RESULTS + 20], offset df2
    EXIT DONE
"#,
    );
    r.assert_done();
    let v: Vec<u32> = (0..5).map(|i| r.result(i)).collect();
    assert_eq!(
        v,
        vec![0x60000 - 4, 0, 0x28, 0x4000, 0x30],
        "ESP, error code, back link, NT, TR"
    );
    assert!(r.faults().is_empty());
    let df2 = r.result(5);
    let ex = r.exceptions();
    assert_eq!(ex.first(), Some(&(13, Some(0x80), df2)));
    assert_eq!(ex.last(), Some(&(8, Some(0), df2)));
}

/// A fault while delivering #DF shuts the processor down (SDM Vol 3A 6.15
/// "Interrupt 8": triple fault): both gates not present.
#[test]
fn triple_fault_when_double_fault_gate_is_missing() {
    let mut r = run_kernel(
        "triple_fault",
        r#"
    and dword ptr [IDT_BASE + 13 * 8 + 4], 0xFFFF7FFF
    and dword ptr [IDT_BASE + 8 * 8 + 4], 0xFFFF7FFF
    mov dword ptr [RESULTS], offset tf1
    mov ax, 0x80
tf1: mov ds, ax
    EXIT 0xBB
"#,
    );
    r.assert_stop(machine::Stop::TripleFault);
    let tf1 = r.result(0);
    assert!(r.faults().is_empty());
    let ex = r.exceptions();
    assert_eq!(ex.first(), Some(&(13, Some(0x80), tf1)));
    assert!(
        ex.contains(&(8, Some(0), tf1)),
        "the #DF was raised: {ex:?}"
    );
}

/// From ring 3 with a null SS0 in the TSS: the #GP of a CLI cannot get a
/// ring-0 stack (#TS with error code EXT = 1, SDM Vol 2A "INT n" pseudo-
/// code), which makes a #DF that needs the same stack: triple fault.
#[test]
fn triple_fault_from_bad_ring0_stack() {
    let mut r = run_kernel(
        "triple_fault_stack",
        r#"
    mov dword ptr [TSS_BASE + 8], 0
    mov dword ptr [RESULTS], offset tf2
    TO_RING3 u_main
u_main:
tf2: cli
    EXIT 0xBB
"#,
    );
    r.assert_stop(machine::Stop::TripleFault);
    let tf2 = r.result(0);
    let st = r.state();
    assert_eq!(
        st.segs[1].selector, 0x1B,
        "nothing of the failed deliveries was committed"
    );
    // The #GP, the #TS raised while delivering it, the #DF they make; an
    // engine may also record the #TS that ends the #DF delivery.
    let ex = r.exceptions();
    assert_eq!(
        ex.get(..3),
        Some(&[(13, Some(0), tf2), (10, Some(1), tf2), (8, Some(0), tf2)][..]),
        "{ex:?}"
    );
    assert!(ex.len() == 3 || ex[3].0 == 10, "{ex:?}");
}

/// The EXT bit of an error code (SDM Vol 3A 6.13): #TS for a null SS0 in
/// the TSS has EXT = 0 when the interrupt was an INT n and EXT = 1 when it
/// was an exception (#UD, benign, so the #TS is delivered rather than
/// turned into a #DF). #TS goes to a handler task, which needs no stack
/// from the broken TSS.
#[test]
fn ts_error_code_ext_bit() {
    let mut r = run_kernel(
        "ts_ext",
        r#"
.set TSSD, 0x5100
    DESC 0x30, ((TSSD << 16) | 0x67), 0x00008900
    mov edi, TSSD
    xor eax, eax
    mov ecx, 0x68 / 4
    rep stosd
    mov dword ptr [TSSD + 0x20], offset ts_task
    mov dword ptr [TSSD + 0x24], 0x2
    mov dword ptr [TSSD + 0x38], 0x60000
    mov dword ptr [TSSD + 0x48], 0x10
    mov dword ptr [TSSD + 0x4C], 0x08
    mov dword ptr [TSSD + 0x50], 0x10
    mov dword ptr [TSSD + 0x54], 0x10
    mov dword ptr [TSSD + 0x58], 0x10
    mov dword ptr [TSSD + 0x5C], 0x10
    mov dword ptr [IDT_BASE + 10 * 8], 0x00300000
    mov dword ptr [IDT_BASE + 10 * 8 + 4], 0x00008500
    GATE 0x80, h80, 0xEE00
    mov dword ptr [TSS_BASE + 8], 0
    mov dword ptr [RESULTS + 0x20], offset ts_int
    mov dword ptr [RESULTS + 0x24], offset ts_ud
    TO_RING3 u_main
h80:
    EXIT 0xBB
u_main:
ts_int:
    int 0x80
ts_ud:
    ud2
    EXIT 0xBC
ts_task:
    mov eax, [esp]
    mov ebx, [RESULTS + 0x10]
    mov [RESULTS + ebx * 4], eax
    mov eax, [TSS_BASE + 0x20]
    mov [RESULTS + 0x8 + ebx * 4], eax
    mov eax, [TSS_BASE + 0x4C]
    mov [RESULTS + 0x18 + ebx * 4], eax
    inc dword ptr [RESULTS + 0x10]
    cmp ebx, 1
    jae 1f
    add dword ptr [TSS_BASE + 0x20], 2
    add esp, 4
    iretd
    jmp ts_task
1:  EXIT DONE
"#,
    );
    r.assert_done();
    let v: Vec<u32> = (0..10).map(|i| r.result(i)).collect();
    assert_eq!(v[4], 2, "two #TS");
    assert_eq!(
        (v[0], v[1]),
        (0, 1),
        "#TS error codes: INT n (EXT=0), #UD (EXT=1)"
    );
    assert_eq!(
        (v[2], v[3]),
        (v[8], v[9]),
        "the interrupted task's EIP: the INT, the UD2"
    );
    assert_eq!(
        (v[6] & 0xFFFF, v[7] & 0xFFFF),
        (0x1B, 0x1B),
        "interrupted in ring 3"
    );
}

// ---- 8. Self-modifying code ---------------------------------------------------------

/// Stores into instructions that were already decoded must be seen: the
/// next instruction in the same block, an instruction of a loop body that
/// already ran, a REP MOVSB copying over the code right after it, and a
/// store through a second linear mapping of the same physical page (SDM
/// Vol 3A 8.1.3: P6 and later detect such writes).
#[test]
fn self_modifying_code() {
    let mut r = run_kernel(
        "smc",
        r#"
    mov byte ptr [smc1 + 1], 0x42
smc1:
    mov al, 0x11
    movzx eax, al
    mov [RESULTS + 0], eax
    xor eax, eax
    mov ecx, 2
smc2_loop:
smc2:
    add eax, 1
    mov byte ptr [smc2 + 2], 5
    dec ecx
    jnz smc2_loop
    mov [RESULTS + 4], eax
    mov esi, offset smc3_src
    mov edi, offset smc3_dst
    mov ecx, 5
    mov ebx, 0x1111
    rep movsb
smc3_dst:
    nop
    nop
    nop
    nop
    nop
    mov [RESULTS + 8], ebx
    mov dword ptr [0x20000], 0x83
    mov dword ptr [0x20000 + 3 * 4], 0x83
    mov eax, 0x20000
    mov cr3, eax
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov eax, 0x33
    mov byte ptr [smc4 + 1 + 0xC00000], 0x99
smc4:
    mov al, 0x44
    mov [RESULTS + 12], eax
    EXIT DONE
smc3_src:
    mov ebx, 0x2222
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0x42, "patched next instruction");
    assert_eq!(r.result(1), 6, "patched loop body: 1 + 5");
    assert_eq!(r.result(2), 0x2222, "code copied by REP MOVSB ran");
    assert_eq!(r.result(3), 0x99, "patched through an alias mapping");
}

// ---- 9. Real mode -------------------------------------------------------------------

/// Real-address mode (SDM Vol 3A 20.1): INT n through the IVT pushes FLAGS,
/// CS, IP and clears IF; IRET restores them. Faults go through the IVT
/// with the faulting IP and no error code: #DE, and #GP(0)/#SS(0) for a
/// word or dword access that runs past offset 0xFFFF (a 386-class CPU
/// checks the 64 KiB limit, 20.1.1). The A20 gate (port 0x92 bit 1) makes
/// FFFF:0510 wrap to 0x500 when off.
#[test]
fn real_mode_ivt_faults_and_a20() {
    let mut r = run_real(
        "real_mode",
        r#"
.macro RHANDLER name, vec
\name:
    push bp
    mov bp, sp
    push bx
    push ax
    mov bx, [RESULTS + 0x3E]
    shl bx, 2
    mov word ptr [RESULTS + 0x40 + bx], \vec
    mov ax, [bp + 2]
    mov [RESULTS + 0x42 + bx], ax
    mov ax, [0x600]
    mov [bp + 2], ax
    inc word ptr [RESULTS + 0x3E]
    pop ax
    pop bx
    pop bp
    iret
.endm
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7C00
    mov word ptr [0x40 * 4], offset h40
    mov word ptr [0x40 * 4 + 2], 0
    mov word ptr [0 * 4], offset h_de
    mov word ptr [0 * 4 + 2], 0
    mov word ptr [13 * 4], offset h_gp
    mov word ptr [13 * 4 + 2], 0
    mov word ptr [12 * 4], offset h_ss
    mov word ptr [12 * 4 + 2], 0
    sti
    mov ax, 0x0102
r_int:
    int 0x40
r_after:
    mov [RESULTS + 0x10], ax
    pushf
    pop ax
    mov [RESULTS + 0x12], ax
    mov word ptr [0x600], offset 1f
    xor dx, dx
    mov ax, 5
    xor cx, cx
r_de: div cx
1:  mov word ptr [0x600], offset 1f
    mov bx, 0xFFFF
r_gp: mov ax, [bx]
1:  mov word ptr [0x600], offset 1f
    mov bp, 0xFFFF
r_ss: mov ax, [bp]
1:  mov word ptr [0x600], offset 1f
r_gp2: mov eax, [0xFFFD]
1:  mov al, [0xFFFF]
    in al, 0x92
    mov [RESULTS + 0x30], al
    mov al, 0
    out 0x92, al
    mov ax, 0xFFFF
    mov es, ax
    mov word ptr es:[0x510], 0xBEEF
    mov ax, [0x500]
    mov [RESULTS + 0x32], ax
    mov al, 2
    out 0x92, al
    mov word ptr es:[0x510], 0x1234
    mov ax, [0x500]
    mov [RESULTS + 0x34], ax
    mov ax, es:[0x510]
    mov [RESULTS + 0x36], ax
    mov word ptr [RESULTS + 0x80], offset r_after
    mov word ptr [RESULTS + 0x82], offset r_de
    mov word ptr [RESULTS + 0x84], offset r_gp
    mov word ptr [RESULTS + 0x86], offset r_ss
    mov word ptr [RESULTS + 0x88], offset r_gp2
    mov al, DONE
    out 0xf4, al
    hlt
h40:
    push bp
    mov bp, sp
    mov cx, [bp + 2]
    mov [RESULTS + 0], cx
    mov cx, [bp + 4]
    mov [RESULTS + 2], cx
    mov cx, [bp + 6]
    mov [RESULTS + 4], cx
    pushf
    pop cx
    mov [RESULTS + 6], cx
    inc ax
    pop bp
    iret
RHANDLER h_de, 0
RHANDLER h_gp, 13
RHANDLER h_ss, 12
"#,
    );
    r.assert_done();
    let h = |off: u32| r.u32_at(RESULTS + off) & 0xFFFF;
    assert_eq!(h(0x80), r.u32_at(RESULTS) & 0xFFFF, "pushed IP = after INT");
    // FLAGS at the INT: IF from STI, ZF and PF from the XOR AX, AX.
    assert_eq!(
        (h(2), h(4), h(6)),
        (0, 0x0246, 0x0046),
        "pushed CS, FLAGS; IF cleared in the handler"
    );
    assert_eq!(h(0x10), 0x0103, "handler ran");
    assert_eq!(h(0x12), 0x0246, "IRET restored FLAGS");
    assert_eq!(h(0x3E), 4, "four faults");
    let faults: Vec<(u32, u32)> = (0..4).map(|i| (h(0x40 + 4 * i), h(0x42 + 4 * i))).collect();
    assert_eq!(
        faults,
        vec![(0, h(0x82)), (13, h(0x84)), (12, h(0x86)), (13, h(0x88))],
        "#DE, #GP, #SS, #GP at the faulting IPs"
    );
    assert_eq!(
        r.u32_at(RESULTS + 0x30) & 0xFF,
        0x02,
        "A20 enabled at power-on"
    );
    assert_eq!(h(0x32), 0xBEEF, "A20 off: FFFF:0510 wraps to 0x500");
    assert_eq!(h(0x34), 0xBEEF, "A20 on: 0x500 untouched");
    assert_eq!(h(0x36), 0x1234);
    assert_eq!(
        r.u32_at(0x10_0500) & 0xFFFF,
        0x1234,
        "A20 on: FFFF:0510 is 0x100500"
    );
    assert_eq!(
        r.exceptions(),
        vec![
            (0, None, h(0x82)),
            (13, Some(0), h(0x84)),
            (12, Some(0), h(0x86)),
            (13, Some(0), h(0x88))
        ]
    );
}

// ---- More protection checks ---------------------------------------------------------

/// Privileged instructions at CPL 3 are #GP(0) (SDM Vol 3A 2.8, 5.9: LGDT,
/// LIDT, LLDT, LTR, MOV to/from CRn and DRn, LMSW, CLTS, INVLPG, HLT,
/// RDMSR, WRMSR, WBINVD, and RDTSC when CR4.TSD = 1), while the sensitive
/// but unprivileged SGDT, SIDT, SMSW, STR and SLDT run and reveal the real
/// values: the x86's Popek-Goldberg violations. The interpreter records each
/// of those as a Sensitive event at CPL 3.
#[test]
fn privileged_and_sensitive_instructions_in_ring3() {
    let mut r = run_kernel(
        "privileged_ring3",
        r#"
    CALL_RING3 u_main
    mov eax, cr4
    or eax, 4
    mov cr4, eax
    CALL_RING3 u_tsd
    mov dword ptr [RESULTS + 0x100], offset p1
    mov dword ptr [RESULTS + 0x104], offset p2
    mov dword ptr [RESULTS + 0x108], offset p3
    mov dword ptr [RESULTS + 0x10C], offset p4
    mov dword ptr [RESULTS + 0x110], offset p5
    mov dword ptr [RESULTS + 0x114], offset p6
    mov dword ptr [RESULTS + 0x118], offset p7
    mov dword ptr [RESULTS + 0x11C], offset p8
    mov dword ptr [RESULTS + 0x120], offset p9
    mov dword ptr [RESULTS + 0x124], offset p10
    mov dword ptr [RESULTS + 0x128], offset p11
    mov dword ptr [RESULTS + 0x12C], offset p12
    mov dword ptr [RESULTS + 0x130], offset p13
    mov dword ptr [RESULTS + 0x134], offset p14
    mov dword ptr [RESULTS + 0x138], offset p15
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov es, ax
    sgdt [RESULTS + 0x00]
    sidt [RESULTS + 0x08]
    smsw eax
    mov [RESULTS + 0x10], eax
    str ax
    movzx eax, ax
    mov [RESULTS + 0x14], eax
    sldt ax
    movzx eax, ax
    mov [RESULTS + 0x18], eax
    rdtsc
    mov eax, 1
    cpuid
    mov ax, 0x28
    EXPECT_FAULT 1f
p1: hlt
1:  EXPECT_FAULT 1f
p2: lgdt [RESULTS]
1:  EXPECT_FAULT 1f
p3: lidt [RESULTS]
1:  EXPECT_FAULT 1f
p4: mov eax, cr0
1:  EXPECT_FAULT 1f
p5: mov cr3, eax
1:  EXPECT_FAULT 1f
p6: mov eax, dr7
1:  EXPECT_FAULT 1f
p7: invlpg [0]
1:  EXPECT_FAULT 1f
p8: clts
1:  EXPECT_FAULT 1f
p9: lmsw ax
1:  EXPECT_FAULT 1f
p10: wbinvd
1:  EXPECT_FAULT 1f
p11: rdmsr
1:  EXPECT_FAULT 1f
p12: wrmsr
1:  mov ax, 0x28
    EXPECT_FAULT 1f
p13: ltr ax
1:  xor eax, eax
    EXPECT_FAULT 1f
p14: lldt ax
1:  RET_RING0
u_tsd:
    mov ax, 0x23
    mov ds, ax
    EXPECT_FAULT 1f
p15: rdtsc
1:  RET_RING0
"#,
    );
    r.assert_done();
    let w = |off: u32| r.u32_at(RESULTS + off);
    assert_eq!(w(0) & 0xFFFF, 0x7F, "SGDT limit");
    assert_eq!(r.u32_at(RESULTS + 2), GDT_BASE, "SGDT base");
    assert_eq!(w(8) & 0xFFFF, 0x7FF, "SIDT limit");
    assert_eq!(r.u32_at(RESULTS + 10), IDT_BASE, "SIDT base");
    assert_eq!(w(0x10) & 0xFFFF, 0x0011, "SMSW: PE and ET");
    assert_eq!(w(0x14), 0x28, "STR");
    assert_eq!(w(0x18), 0, "SLDT");
    let got = r.fault_sites();
    let want: Vec<(u32, u32, u32)> = (0..15).map(|i| (13, 0, w(0x100 + 4 * i))).collect();
    assert_eq!(got, want);
    let sensitive: Vec<(String, u8)> = r
        .m()
        .trace
        .records()
        .filter_map(|rec| match &rec.event {
            machine::Event::Sensitive { insn, cpl, .. }
                if ["sgdt", "sidt", "smsw", "str", "sldt"].contains(&insn.as_ref()) =>
            {
                Some((insn.to_string(), *cpl))
            }
            _ => None,
        })
        .collect();
    let want: Vec<(String, u8)> = ["sgdt", "sidt", "smsw", "str", "sldt"]
        .iter()
        .map(|s| (s.to_string(), 3))
        .collect();
    assert_eq!(sensitive, want);
}

/// Expand-down data segments (SDM Vol 3A 3.4.5.1, 5.3): valid offsets are
/// limit+1 up to 0xFFFFFFFF (B=1) or 0xFFFF (B=0); anything else is #GP(0),
/// or #SS(0) for the stack, e.g. a PUSH that goes below an expand-down
/// stack's limit.
#[test]
fn expand_down_segments() {
    let mut r = run_kernel(
        "expand_down",
        r#"
    DESC 0x30, 0x00000FFF, 0x00409600
    DESC 0x38, 0x00000FFF, 0x00009600
    DESC 0x40, 0x00000FFF, 0x0040F601
    mov ax, 0x30
    mov es, ax
    mov eax, es:[SCRATCH]
    EXPECT_FAULT 1f
ed1: mov eax, es:[0xFFF]
1:  EXPECT_FAULT 1f
ed2: mov eax, es:[0xFFE]
1:  mov eax, es:[0x1000]
    mov eax, es:[0xFFFFFFF0]
    mov ax, 0x38
    mov es, ax
    mov eax, es:[0xFFFC]
    EXPECT_FAULT 1f
ed3: mov eax, es:[0xFFFE]
1:  EXPECT_FAULT 1f
ed4: mov eax, es:[0x10000]
1:  CALL_RING3 u_main
    mov dword ptr [RESULTS + 0x40], offset ed1
    mov dword ptr [RESULTS + 0x44], offset ed2
    mov dword ptr [RESULTS + 0x48], offset ed3
    mov dword ptr [RESULTS + 0x4C], offset ed4
    mov dword ptr [RESULTS + 0x50], offset ed5
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov ax, 0x43
    mov ss, ax
    mov esp, 0x1008
    push 0x11111111
    push 0x22222222
    EXPECT_FAULT 1f
ed5: push 0x33333333
1:  mov [RESULTS], esp
    RET_RING0
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![
            (13, 0, a(0)),
            (13, 0, a(1)),
            (13, 0, a(2)),
            (13, 0, a(3)),
            (12, 0, a(4))
        ]
    );
    assert_eq!(r.result(0), 0x1000, "ESP unchanged by the faulting PUSH");
    assert_eq!(
        r.u32_at(0x11000),
        0x2222_2222,
        "pushes inside the segment landed at base + offset"
    );
    assert_eq!(r.u32_at(0x10FFC), 0, "the faulting PUSH stored nothing");
}

/// POP SS moves the stack pointer by the size of the stack it popped from
/// (the old SS's B bit), not the new one's: from a 16-bit stack SP wraps
/// at 64 KiB and the upper half of ESP stays; from a 32-bit stack all of
/// ESP moves. (Found by test386.asm's POST 9 stack tests.)
#[test]
fn pop_ss_moves_the_stack_pointer_by_the_old_stack_size() {
    let mut r = run_kernel(
        "pop_ss",
        r#"
    DESC 0x30, 0x0000FFFF, 0x00009200
    mov ax, 0x30
    mov ss, ax
    mov esp, 0x20000
    push dword ptr 0x10
    mov [RESULTS], esp
    pop ss
    mov [RESULTS + 4], esp
    mov esp, 0x30000
    push dword ptr 0x30
    pop ss
    mov [RESULTS + 8], esp
    mov ax, 0x10
    mov ss, ax
    mov esp, KSTACK
    EXIT DONE
"#,
    );
    r.assert_done();
    assert_eq!(
        r.result(0),
        0x2_FFFC,
        "PUSH on the 16-bit stack: SP 0 -> FFFC"
    );
    assert_eq!(
        r.result(1),
        0x2_0000,
        "POP SS into a 32-bit SS from a 16-bit stack: SP FFFC -> 0, ESP's upper half kept"
    );
    assert_eq!(
        r.result(2),
        0x3_0000,
        "POP SS into a 16-bit SS from a 32-bit stack: all of ESP moves"
    );
}

/// ENTER's frame pointer (FrameTemp) is ESP or SP by the operand size,
/// whatever the stack size (SDM Vol 2A, ENTER, "Operation"): a 32-bit
/// ENTER on a 16-bit stack at ESP = 0x10000 pushes SP wrapped to FFFC with
/// ESP's upper half kept, 0x1FFFC, and loads it into EBP. (Found by
/// test386.asm's POST 1A.)
#[test]
fn enter_frame_pointer_follows_the_operand_size() {
    let mut r = run_kernel(
        "enter_frame",
        r#"
    DESC 0x30, 0x0000FFFF, 0x00009200
    mov ax, 0x30
    mov ss, ax
    mov esp, 0x10000
    mov ebp, 0x1FFF0
    enter 8, 1
    mov [RESULTS], esp
    mov [RESULTS + 4], ebp
    mov eax, [0xFFF8]
    mov [RESULTS + 8], eax
    mov eax, [0xFFFC]
    mov [RESULTS + 12], eax
    mov esp, 0x10000
    mov ebp, 0x12340
    .byte 0x66
    enter 2, 0
    mov [RESULTS + 16], esp
    mov [RESULTS + 20], ebp
    mov ax, 0x10
    mov ss, ax
    mov esp, KSTACK
    EXIT DONE
"#,
    );
    r.assert_done();
    assert_eq!(
        r.result(1),
        0x1_FFFC,
        "EBP = FrameTemp = ESP after the push"
    );
    assert_eq!(r.result(3), 0x1_FFF0, "the old EBP pushed at SS:FFFC");
    assert_eq!(
        r.result(2),
        0x1_FFFC,
        "FrameTemp pushed as a dword at SS:FFF8"
    );
    assert_eq!(
        r.result(0),
        0x1_FFF0,
        "SP = FFF8 - 8, ESP's upper half kept"
    );
    assert_eq!(
        r.result(5),
        0x1_FFFE,
        "16-bit ENTER: BP = SP, EBP's upper half kept"
    );
    assert_eq!(r.result(4), 0x1_FFFC, "16-bit ENTER: SP = FFFE - 2");
}

/// ARPL writes its destination only when it raises the RPL (SDM Vol 2A,
/// ARPL, "Operation"): with the RPL already high enough, a memory operand
/// in a read-only segment is read and nothing faults (a real 386 behaves
/// so; test386.asm's POST 17 checks it). Raising it there is #GP(0).
#[test]
fn arpl_writes_only_a_raised_rpl() {
    let mut r = run_kernel(
        "arpl_ro",
        r#"
    mov word ptr [SCRATCH], 0xFFF3
    mov word ptr [SCRATCH + 2], 0xFFF0
    DESC 0x30, 0x0000FFFF, 0x00CF9000
    mov ax, 0x30
    mov fs, ax
    mov bx, 2
    xor eax, eax
    arpl fs:[SCRATCH], bx
    setz al
    mov [RESULTS], eax
    EXPECT_FAULT 1f
ar1: arpl fs:[SCRATCH + 2], bx
1:  movzx eax, word ptr [SCRATCH + 2]
    mov [RESULTS + 8], eax
    mov dword ptr [RESULTS + 12], offset ar1
    EXIT DONE
"#,
    );
    r.assert_done();
    assert_eq!(
        r.result(0),
        0,
        "RPL 3 >= 2: ZF = 0, no fault on the read-only segment"
    );
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![(13, 0, r.result(3))],
        "raising the RPL in a read-only segment: #GP(0) at the ARPL"
    );
    assert_eq!(r.result(2), 0xFFF0, "the faulting ARPL wrote nothing");
}

/// The code segment limit (SDM Vol 3A 5.3): an instruction that starts
/// beyond CS.limit, or whose last byte lies beyond it, is #GP(0) with EIP
/// at that instruction; a far JMP to an offset beyond the target's limit
/// is #GP(0) at the JMP.
#[test]
fn code_segment_limit() {
    let mut r = run_kernel(
        "cs_limit",
        r#"
    GATE 13, cl_gp, 0x8E00
    mov eax, offset cl_edge - LOAD_ADDR
    mov [cl_far], eax
    inc eax
    call set_cs30
    mov dword ptr [cl_next], offset c1
    jmp fword ptr [cl_far]
c1: mov dword ptr [cl_next], offset c2
cl_j:
    jmp 0x30:0x00FFFFF0
c2: mov eax, [cl_far]
    add eax, 3
    call set_cs30
    mov dword ptr [cl_next], offset c3
    jmp fword ptr [cl_far]
c3: mov eax, [cl_far]
    add eax, 18
    call set_cs30
    mov dword ptr [cl_next], offset c4
    jmp fword ptr [cl_far]
c4: mov eax, [cl_far]
    mov [RESULTS + 0x40], eax
    mov dword ptr [RESULTS + 0x44], offset cl_j
    EXIT DONE
.set LOAD_ADDR, 0x100000
# EAX = byte-granular limit; base LOAD_ADDR, 32-bit execute/read code, DPL 0.
set_cs30:
    mov edx, eax
    and eax, 0xFFFF
    mov [GDT_BASE + 0x30], eax
    and edx, 0xF0000
    or edx, 0x00409A10
    mov [GDT_BASE + 0x34], edx
    ret
cl_gp:
    mov ebx, [RESULTS + 0x3C]
    shl ebx, 4
    pop eax
    mov [RESULTS + ebx], eax
    pop eax
    mov [RESULTS + ebx + 4], eax
    pop eax
    mov [RESULTS + ebx + 8], eax
    pop eax
    inc dword ptr [RESULTS + 0x3C]
    jmp dword ptr [cl_next]
.balign 4
cl_next: .long 0
cl_far: .long 0
        .word 0x30
cl_edge:
    nop
    nop
    mov eax, 1
    mov eax, 2
    jmp 0x08:c4
"#,
    );
    r.assert_done();
    let edge = r.result(0x10);
    let cl_j = r.result(0x11);
    assert_eq!(
        r.result(0x3C / 4),
        3,
        "three #GP; the code within the limit ran"
    );
    let got: Vec<(u32, u32, u32)> = (0..3)
        .map(|i| (r.result(4 * i), r.result(4 * i + 1), r.result(4 * i + 2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, edge + 2, 0x30), // starts beyond the limit
            (0, cl_j, 0x08),     // far JMP beyond the target's limit
            (0, edge + 2, 0x30), // straddles the limit
        ]
    );
}

/// A far CALL from ring 3 to a conforming ring-0 code segment runs it at
/// CPL 3 (CS.RPL stays 3, no stack switch); to a non-conforming ring-0
/// segment it is #GP(selector) (SDM Vol 3A 5.8.1-5.8.2).
#[test]
fn conforming_code_keeps_cpl() {
    let mut r = run_kernel(
        "conforming",
        r#"
    DESC 0x30, 0x0000FFFF, 0x00CF9E00
    CALL_RING3 u_main
    mov dword ptr [RESULTS + 0x40], offset cf1
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    call 0x33:conf_target
    mov [RESULTS + 8], esp
    EXPECT_FAULT 1f
cf1: call 0x0B:conf_target
1:  RET_RING0
conf_target:
    mov eax, cs
    mov [RESULTS], eax
    mov [RESULTS + 4], esp
    retf
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0x33, "CS.RPL = CPL = 3 in conforming code");
    assert_eq!(r.result(1), USTACK - 8, "same stack: CS and EIP pushed");
    assert_eq!(r.result(2), USTACK);
    assert_eq!(r.fault_codes(), vec![(13, 0x08)]);
    assert_eq!(r.faults()[0].eip, r.result(0x10));
    assert_eq!(
        r.priv_changes()
            .iter()
            .filter(|p| p.2 == PrivCause::CallGate)
            .count(),
        0
    );
}

/// A hardware interrupt (8254 PIT channel 0 through the 8259A, IRQ0 ->
/// vector 0x20) arriving while ring 3 spins: delivered through the IDT
/// with a switch to the TSS stack, seen as an Interrupt event and a
/// PrivilegeChange with cause HardwareInterrupt at the interrupted EIP.
#[test]
fn hardware_interrupt_in_ring3() {
    let mut r = run_kernel(
        "hw_irq",
        r#"
    GATE 0x20, irq0, 0x8E00
    mov al, 0x11
    out 0x20, al
    out 0xA0, al
    mov al, 0x20
    out 0x21, al
    mov al, 0x28
    out 0xA1, al
    mov al, 4
    out 0x21, al
    mov al, 2
    out 0xA1, al
    mov al, 1
    out 0x21, al
    out 0xA1, al
    mov al, 0xFE
    out 0x21, al
    mov al, 0xFF
    out 0xA1, al
    mov al, 0x30
    out 0x43, al
    mov al, 100
    out 0x40, al
    xor al, al
    out 0x40, al
    mov dword ptr [RESULTS + 0x40], offset u_spin
    CALL_RING3 u_spin, 0x202
u_spin:
    jmp u_spin
irq0:
    mov ax, 0x10
    mov ds, ax
    mov eax, [esp]
    mov [RESULTS + 0], eax
    mov eax, [esp + 4]
    mov [RESULTS + 4], eax
    mov eax, [esp + 8]
    mov [RESULTS + 8], eax
    mov eax, [esp + 12]
    mov [RESULTS + 12], eax
    mov eax, [esp + 16]
    mov [RESULTS + 16], eax
    mov [RESULTS + 20], esp
    pushfd
    pop eax
    mov [RESULTS + 24], eax
    mov al, 0x20
    out 0x20, al
    EXIT DONE
"#,
    );
    r.assert_done();
    let spin = r.result(0x10);
    let v: Vec<u32> = (0..7).map(|i| r.result(i)).collect();
    assert_eq!(v, vec![spin, 0x1B, 0x202, USTACK, 0x23, KSTACK - 20, 0x002]);
    let irqs: Vec<(u8, u32)> = r
        .m()
        .trace
        .records()
        .filter_map(|rec| match rec.event {
            machine::Event::Interrupt { vector, eip } => Some((vector, eip)),
            _ => None,
        })
        .collect();
    assert_eq!(irqs, vec![(0x20, spin)]);
    assert!(
        r.priv_changes()
            .contains(&(3, 0, PrivCause::HardwareInterrupt, spin)),
        "{:?}",
        r.priv_changes()
    );
}

/// "Unreal mode" (SDM Vol 3A 20.1.1 and 3.4.3): a segment register loaded
/// in protected mode with a 4 GiB limit keeps that hidden limit after the
/// return to real mode, when only the base is reloaded; 32-bit offsets
/// above 64 KiB then work.
#[test]
fn real_mode_keeps_hidden_limit() {
    let mut r = run_real(
        "unreal",
        r#"
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7C00
    lgdt [gdt_ptr]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp 0x08:pm16
pm16:
    mov ax, 0x10
    mov ds, ax
    mov eax, cr0
    and al, 0xFE
    mov cr0, eax
    jmp 0:rm
rm:
    xor ax, ax
    mov ds, ax
    mov ebx, 0x100000
    mov dword ptr [ebx], 0xCAFEBABE
    mov eax, [ebx]
    mov [RESULTS], eax
    mov al, DONE
    out 0xf4, al
    hlt
.balign 8
gdt:
    .quad 0
    .quad 0x00009A000000FFFF
    .quad 0x00CF92000000FFFF
gdt_ptr:
    .word 23
    .long gdt
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0xCAFE_BABE);
    assert_eq!(r.u32_at(0x10_0000), 0xCAFE_BABE);
    let st = r.state();
    let ds = st.segs[machine::cpu::Seg::Ds as usize];
    assert_eq!((ds.selector, ds.base, ds.limit), (0, 0, 0xFFFF_FFFF));
    assert!(!st.protected());
}

/// Interrupt gates clear IF on entry, trap gates leave it (SDM Vol 3A
/// 6.12.1.3); IRET restores the caller's EFLAGS.
#[test]
fn trap_gate_keeps_if_interrupt_gate_clears_it() {
    let mut r = run_kernel(
        "gate_if",
        r#"
    GATE 0x43, h_flags, 0x8F00
    GATE 0x44, h_flags, 0x8E00
    sti
    int 0x43
    int 0x44
    pushfd
    pop eax
    mov [RESULTS + 8], eax
    cli
    EXIT DONE
h_flags:
    pushfd
    pop eax
    mov ebx, [RESULTS + 12]
    mov [RESULTS + ebx * 4], eax
    inc dword ptr [RESULTS + 12]
    iretd
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0) & 0x200, 0x200, "trap gate: IF still set");
    assert_eq!(r.result(1) & 0x200, 0, "interrupt gate: IF cleared");
    assert_eq!(r.result(2) & 0x200, 0x200, "IRET restored IF");
}

/// Segments from a local descriptor table (SDM Vol 3A 3.5.1, LLDT in Vol
/// 2A): TI=1 selectors index the LDT, with its own limit; with a null LDTR
/// every TI=1 selector is #GP(selector).
#[test]
fn ldt_segments() {
    let mut r = run_kernel(
        "ldt",
        r#"
.set LDT, 0x5800
    DESC 0x30, ((LDT << 16) | 0x0F), 0x00008200
    mov dword ptr [LDT + 0], 0
    mov dword ptr [LDT + 4], 0
    mov dword ptr [LDT + 8], 0x60000FFF
    mov dword ptr [LDT + 12], 0x00409200
    mov ax, 0x0C
    EXPECT_FAULT 1f
l1: mov ds, ax
1:  mov ax, 0x30
    lldt ax
    sldt bx
    movzx ebx, bx
    mov [RESULTS + 0], ebx
    mov ax, 0x0C
    mov fs, ax
    mov dword ptr fs:[0x10], 0x4C4C4C4C
    mov ax, 0x14
    EXPECT_FAULT 1f
l2: mov gs, ax
1:  xor ax, ax
    lldt ax
    mov ax, 0x0C
    EXPECT_FAULT 1f
l3: mov gs, ax
1:  mov eax, fs:[0x10]
    mov [RESULTS + 4], eax
    mov dword ptr [RESULTS + 0x40], offset l1
    mov dword ptr [RESULTS + 0x44], offset l2
    mov dword ptr [RESULTS + 0x48], offset l3
    EXIT DONE
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(
        got,
        vec![(13, 0x0C, a(0)), (13, 0x14, a(1)), (13, 0x0C, a(2))],
        "null LDTR; index beyond the LDT limit; null LDTR again"
    );
    assert_eq!(r.result(0), 0x30, "SLDT");
    assert_eq!(
        r.u32_at(0x6010),
        0x4C4C_4C4C,
        "FS from the LDT: base 0x6000"
    );
    assert_eq!(
        r.result(1),
        0x4C4C_4C4C,
        "a loaded segment survives LDTR changes (cached)"
    );
}

/// With the GDT, IDT and TSS on supervisor-only pages, ring-3 code still
/// gets its interrupts and exceptions delivered: the processor's own
/// accesses to the system tables and to the inner stack are supervisor
/// accesses whatever the CPL (SDM Vol 3A 4.6.1, "implicit supervisor-mode
/// accesses").
#[test]
fn paging_system_tables_on_supervisor_pages() {
    let mut r = run_kernel(
        "paging_sys_tables",
        r#"
.set PD, 0x20000
.set PT0, 0x21000
    GATE 0x80, sys80, 0xEE00
    mov edi, PD
    xor eax, eax
    mov ecx, 2 * 1024
    rep stosd
    mov edi, PT0
    mov eax, 0x7
    mov ecx, 1024
1:  stosd
    add eax, 0x1000
    loop 1b
    mov dword ptr [PT0 + 1 * 4], 0x1000 | 3
    mov dword ptr [PT0 + 2 * 4], 0x2000 | 3
    mov dword ptr [PT0 + 3 * 4], 0x3000 | 3
    mov dword ptr [PT0 + 4 * 4], 0x4000 | 3
    mov dword ptr [PT0 + 5 * 4], 0x5000 | 3
    mov dword ptr [PT0 + 0x7F * 4], 0x7F000 | 3
    mov dword ptr [PD], PT0 | 7
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    CALL_RING3 u_main
    EXIT DONE
sys80:
    mov dword ptr [RESULTS], 0x80
    iretd
u_main:
    mov ax, 0x23
    mov ds, ax
    int 0x80
    EXPECT_FAULT 1f
    cli
1:  EXPECT_FAULT 1f
    mov eax, [0x3000]
1:  RET_RING0
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0x80, "INT 0x80 through a supervisor-only IDT");
    let got: Vec<(u32, u32, u32)> = r
        .faults()
        .iter()
        .map(|f| (f.vector, f.error, f.cr2))
        .collect();
    assert_eq!(got.len(), 2, "{got:x?}");
    assert_eq!(got[0].0, 13, "the #GP of CLI was delivered");
    assert_eq!(got[1], (14, 5, 0x3000), "ring-3 read of the TSS page");
}

/// Single-step (SDM Vol 3A 17.3.1.4): with EFLAGS.TF set the processor
/// raises a #DB trap after each instruction, except after the instruction
/// that set TF; DR6.BS tells why. The handler runs with TF cleared (the
/// gate clears it) and IRET restores it.
#[test]
fn single_step_trap() {
    let mut r = run_kernel(
        "single_step",
        r#"
    GATE 1, db_handler, 0x8E00
    pushfd
    or dword ptr [esp], 0x100
    popfd
ss1: nop
ss2: nop
ss3: mov eax, 1
ss4: mov dword ptr [RESULTS + 0x40], offset ss2
    mov dword ptr [RESULTS + 0x44], offset ss3
    mov dword ptr [RESULTS + 0x48], offset ss4
    EXIT DONE
db_handler:
    mov ebx, [RESULTS + 0x3C]
    mov eax, [esp]
    mov [RESULTS + ebx * 8], eax
    mov eax, dr6
    mov [RESULTS + ebx * 8 + 4], eax
    inc dword ptr [RESULTS + 0x3C]
    cmp ebx, 2
    jb 1f
    and dword ptr [esp + 8], ~0x100
1:  iretd
"#,
    );
    r.assert_done();
    let n = r.result(0x3C / 4);
    let traps: Vec<(u32, u32)> = (0..n)
        .map(|i| (r.result(2 * i), r.result(2 * i + 1) & 0x4000))
        .collect();
    let a = |i: u32| r.result(0x10 + i);
    assert_eq!(
        traps,
        vec![(a(0), 0x4000), (a(1), 0x4000), (a(2), 0x4000)],
        "a #DB after each of NOP, NOP, MOV with DR6.BS set; none after the POPF"
    );
}

/// Alignment checking (SDM Vol 3A 6.15 "Interrupt 17"): with CR0.AM and
/// EFLAGS.AC set, a misaligned data access at CPL 3 raises #AC(0); at CPL
/// 0, or for naturally aligned accesses, nothing happens.
#[test]
fn alignment_check_in_ring3() {
    let mut r = run_kernel(
        "alignment_check",
        r#"
    mov eax, cr0
    or eax, 0x40000
    mov cr0, eax
    CALL_RING3 u_main, 0x40002
    pushfd
    or dword ptr [esp], 0x40000
    popfd
    mov eax, [RESULTS + 1]
    mov dword ptr [RESULTS + 0x40], offset ac1
    mov dword ptr [RESULTS + 0x44], offset ac2
    EXIT DONE
u_main:
    mov ax, 0x23
    mov ds, ax
    mov eax, [RESULTS]
    EXPECT_FAULT 1f
ac1: mov eax, [RESULTS + 1]
1:  mov ax, [RESULTS + 2]
    EXPECT_FAULT 1f
ac2: mov ax, [RESULTS + 3]
1:  mov al, [RESULTS + 3]
    RET_RING0
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    let got = r.fault_sites();
    assert_eq!(got, vec![(17, 0, a(0)), (17, 0, a(1))]);
}

/// REP STOSD through the paging unit (the interpreter stores a page at a
/// time straight into RAM): across present pages it fills every byte and
/// leaves ECX = 0 and EDI past the end; into a page that is not present
/// it stops with #PF at that page's first byte (the guest's code is at
/// 1 MiB, so the missing page is at 3 MiB), with ECX and EDI counting
/// exactly the stores done (SDM Vol 2B "REP": the registers are updated
/// for each iteration, and a fault leaves them at the faulting one).
#[test]
fn rep_stosd_across_pages_and_into_a_missing_one() {
    let mut r = run_kernel(
        "rep_stosd_pages",
        r#"
.set PD, 0x20000
.set PT0, 0x21000
    mov edi, PD
    xor eax, eax
    mov ecx, 2 * 1024
    rep stosd
    mov edi, PT0
    mov eax, 0x3
    mov ecx, 1024
1:  stosd
    add eax, 0x1000
    loop 1b
    mov dword ptr [PT0 + 0x300 * 4], 0
    mov dword ptr [PD], PT0 | 3
    mov eax, PD
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    cld
    mov eax, 0x5A5A5A5A
    mov edi, 0x200000 - 8
    mov ecx, 3000
    rep stosd
    mov [RESULTS + 0x00], ecx
    mov [RESULTS + 0x04], edi
    mov ax, 0x1234
    mov edi, 0x180001
    mov ecx, 0x1001
    rep stosw
    mov [RESULTS + 0x08], ecx
    mov [RESULTS + 0x0C], edi
    mov eax, 0xC3C3C3C3
    mov edi, 0x300000 - 0x10
    mov ecx, 1000
    EXPECT_FAULT 1f
    rep stosd
1:  mov [RESULTS + 0x10], ecx
    mov [RESULTS + 0x14], edi
    EXIT DONE
"#,
    );
    r.assert_done();
    assert_eq!(r.result(0), 0, "ECX after the whole fill");
    assert_eq!(r.result(1), 0x200000 - 8 + 3000 * 4, "EDI after it");
    for a in [
        0x200000 - 8,
        0x200000 - 4,
        0x200000,
        0x201000,
        0x200000 - 8 + 2999 * 4,
    ] {
        assert_eq!(r.u32_at(a), 0x5A5A5A5A, "filled at {a:#x}");
    }
    assert_eq!(r.u32_at(0x200000 - 12), 0, "not before the start");
    assert_eq!(r.u32_at(0x200000 - 8 + 3000 * 4), 0, "not past the end");
    // Words at odd addresses, one across each page boundary.
    assert_eq!((r.result(2), r.result(3)), (0, 0x180001 + 0x1001 * 2));
    assert_eq!(
        r.u32_at(0x180FFF) & 0xFFFF,
        0x1234,
        "the word across 0x181000"
    );
    assert_eq!(r.u32_at(0x182001) & 0xFFFF, 0x1234, "the last word");
    assert_eq!(r.u32_at(0x182003) & 0xFFFF, 0, "nothing after it");
    assert_eq!(
        r.faults()
            .iter()
            .map(|f| (f.vector, f.error, f.cr2))
            .collect::<Vec<_>>(),
        vec![(14, 2, 0x300000)],
        "a write to the page that is not present"
    );
    assert_eq!(r.result(4), 1000 - 4, "ECX: four stores done");
    assert_eq!(r.result(5), 0x300000, "EDI at the faulting store");
    assert_eq!(r.u32_at(0x300000 - 4), 0xC3C3C3C3, "the stores before it");
}
