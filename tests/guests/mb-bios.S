# mb-bios.S: a multiboot kernel started by ringlab's BIOS after POST (the
# loader's handoff, boot.S) looks for what a BIOS leaves: the IVT's INT 10h
# vector in the ROM, the BDA's EBDA segment and base memory, the MP
# floating pointer in the EBDA with a good checksum, and the multiboot
# memory map (the same list as INT 15h E820).
    .include "platform.inc"
    .include "multiboot.inc"

main:
    mov [mbi], ebx                  # platform.inc's start keeps EBX
    mov esi, offset m_ivt
    call puts
    movzx eax, word ptr [0x10 * 4 + 2]  # INT 10h's segment: the ROM's
    call puthex
    call newline
    mov esi, offset m_bda
    call puts
    movzx eax, word ptr [0x40E]     # EBDA segment
    call puthex
    mov al, ' '
    call putc
    movzx eax, word ptr [0x413]     # base memory, KiB
    call putdec
    call newline
    # The MP floating pointer: "_MP_" at the EBDA's start + 16 bytes.
    movzx edi, word ptr [0x40E]
    shl edi, 4
    mov ecx, 1024 / 16
1:  cmp dword ptr [edi], 0x5F504D5F     # "_MP_"
    je 2f
    add edi, 16
    loop 1b
    mov esi, offset m_nomp
    call puts
    jmp 4f
2:  xor eax, eax                    # checksum of its 16 bytes
    xor ecx, ecx
3:  add al, [edi + ecx]
    inc ecx
    cmp ecx, 16
    jb 3b
    push eax
    mov esi, offset m_mp
    call puts
    mov eax, edi
    call puthex
    mov esi, offset m_sum
    call puts
    pop eax
    call putdec
    call newline
4:  # The multiboot memory map: flags bit 6, mmap_length at +44, addr +48.
    mov ebx, [mbi]
    mov esi, offset m_map
    call puts
    mov eax, [ebx]
    call puthex
    call newline
    mov ecx, [ebx + 44]
    mov edi, [ebx + 48]
    add ecx, edi
5:  cmp edi, ecx
    jae 6f
    mov eax, [edi + 8]              # base (high half)
    call puthex
    mov eax, [edi + 4]              # base (low)
    call puthex
    mov al, ' '
    call putc
    mov eax, [edi + 12]             # length (low)
    call puthex
    mov al, ' '
    call putc
    mov eax, [edi + 20]             # type
    call putdec
    call newline
    add edi, [edi]
    add edi, 4
    jmp 5b
6:  ret

mbi: .long 0
m_ivt: .asciz "INT 10h vector segment "
m_bda: .asciz "EBDA segment, base KiB "
m_nomp: .asciz "no MP floating pointer\n"
m_mp: .asciz "MP floating pointer at "
m_sum: .asciz ", checksum "
m_map: .asciz "multiboot flags "
