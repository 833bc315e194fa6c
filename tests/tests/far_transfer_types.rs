//! Far JMP and CALL accept only a code segment, a call gate, a task gate or
//! an available TSS (SDM Vol 2A "JMP" and "CALL": "IF segment type is not a
//! conforming or nonconforming code segment, call gate, task gate, or TSS
//! THEN #GP(segment selector)"). Data segments whose type field happens to
//! equal a system type (1 = a 16-bit TSS, 4 = a call gate, 5 = a task gate)
//! are still data segments (S = 1, SDM Vol 3A 3.4.5.1): #GP, nothing
//! switched.

use tests::guest::*;

#[test]
fn far_jmp_and_call_to_data_segments_with_system_type_bits_are_gp() {
    let mut r = run_kernel(
        "far_transfer_types",
        r#"
    DESC 0x30, 0x0000FFFF, 0x00CF9100
    DESC 0x38, 0x0000FFFF, 0x00CF9400
    DESC 0x40, 0x0000FFFF, 0x00CF9500
    EXPECT_FAULT 1f
ft1: jmp 0x30:0
1:  EXPECT_FAULT 1f
ft2: call 0x30:0
1:  EXPECT_FAULT 1f
ft3: jmp 0x38:0
1:  EXPECT_FAULT 1f
ft4: call 0x38:0
1:  EXPECT_FAULT 1f
ft5: jmp 0x40:0
1:  EXPECT_FAULT 1f
ft6: call 0x40:0
1:  str ax
    movzx eax, ax
    mov [RESULTS], eax
    mov [RESULTS + 4], esp
    mov dword ptr [RESULTS + 0x40], offset ft1
    mov dword ptr [RESULTS + 0x44], offset ft2
    mov dword ptr [RESULTS + 0x48], offset ft3
    mov dword ptr [RESULTS + 0x4C], offset ft4
    mov dword ptr [RESULTS + 0x50], offset ft5
    mov dword ptr [RESULTS + 0x54], offset ft6
    EXIT DONE
"#,
    );
    r.assert_done();
    let a = |i: u32| r.result(0x10 + i);
    assert_eq!(
        r.fault_sites(),
        vec![
            (13, 0x30, a(0)),
            (13, 0x30, a(1)),
            (13, 0x38, a(2)),
            (13, 0x38, a(3)),
            (13, 0x40, a(4)),
            (13, 0x40, a(5)),
        ]
    );
    assert_eq!(r.result(0), 0x28, "TR unchanged: no task switch");
    assert_eq!(r.result(1), KSTACK, "nothing pushed");
}
