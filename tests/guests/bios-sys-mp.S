# bios-sys-mp.S: the MultiProcessor Specification 1.4 tables, found and
# checked as xv6's mp.c does (mpsearch, mpconfig, mpinit): the floating
# pointer in the first KiB of the EBDA, whose segment is the word at BDA
# 40:0Eh, on a 16-byte boundary, signature "_MP_", its 16 bytes summing to
# 0; the configuration table it points to, "PCMP", version 1 or 4, its
# length's bytes summing to 0; then every entry, printed. Physical
# addresses become segment:offset pairs (real mode; no 32-bit walker).
    .include "bios-sys.inc"

main:
# mpsearch: the EBDA's first KiB.
    mov ax, [0x40E]
    PRINT "EBDA segment "
    call puthex16
    call newline
    mov es, ax
    xor di, di
1:  cmp dword ptr es:[di], 0x5F504D5F  # "_MP_"
    jne 2f
    mov cx, 16
    call checksum
    jz 3f
2:  add di, 16
    cmp di, 1024
    jb 1b
    PRINT "no floating pointer in the EBDA"
    call newline
    EXIT 1

3:  PRINT "floating pointer at "
    mov ax, es
    call phys_es_di
    call puthex32
    PRINT ", checksum ok"
    call newline
    PRINT "  length "
    mov al, es:[di + 8]
    call puthex8
    PRINT " revision "
    mov al, es:[di + 9]
    call puthex8
    PRINT " features "
    mov al, es:[di + 11]
    call puthex8
    call space
    mov al, es:[di + 12]
    call puthex8
    PRINT " table "
    mov eax, es:[di + 4]
    call puthex32
    call newline

# mpconfig: the table, at a physical address below 1 MiB.
    mov eax, es:[di + 4]
    test eax, eax
    jz 8f
    mov di, ax
    and di, 0x0F
    shr eax, 4
    mov es, ax
    cmp dword ptr es:[di], 0x504D4350   # "PCMP"
    jne 8f
    mov al, es:[di + 6]
    cmp al, 1
    je 4f
    cmp al, 4
    jne 8f
4:  mov cx, es:[di + 4]
    call checksum
    jnz 8f
    PRINT "PCMP revision "
    mov al, es:[di + 6]
    call puthex8
    PRINT ", length "
    mov ax, es:[di + 4]
    call puthex16
    PRINT ", checksum ok, OEM '"
    mov si, 8
    mov cx, 8
    call print_field
    PRINT "' product '"
    mov si, 16
    mov cx, 12
    call print_field
    PRINT "'"
    call newline
    PRINT "  entries "
    mov ax, es:[di + 34]
    call puthex16
    PRINT " local APIC "
    mov eax, es:[di + 36]
    call puthex32
    PRINT " OEM table "
    mov eax, es:[di + 28]
    call puthex32
    PRINT " extended "
    mov ax, es:[di + 40]
    call puthex16
    call newline

# mpinit: the entries, by type.
    mov bx, di
    add bx, es:[di + 4]             # the end
    add di, 44                      # the first entry
5:  cmp di, bx
    jae 7f
    mov al, es:[di]
    cmp al, 0
    je entry_cpu
    cmp al, 1
    je entry_bus
    cmp al, 2
    je entry_ioapic
    cmp al, 3
    je entry_intr
    cmp al, 4
    je entry_lintr
    PRINT "unknown entry type "
    call puthex8
    call newline
    EXIT 1

entry_cpu:
    PRINT "cpu: apic id "
    mov al, es:[di + 1]
    call puthex8
    PRINT " version "
    mov al, es:[di + 2]
    call puthex8
    PRINT " flags "
    mov al, es:[di + 3]
    call puthex8
    PRINT " signature "
    mov eax, es:[di + 4]
    call puthex32
    call newline
# The features are the CPU's: compared with CPUID here, since KVM hosts
# may show other bits than the interpreter's table.
    PRINT "  features = CPUID.1:EDX: "
    push bx
    mov eax, 1
    cpuid
    pop bx
    cmp edx, es:[di + 8]
    jne 1f
    PRINT "yes"
    jmp 2f
1:  PRINT "no"
2:  call newline
    add di, 20
    jmp 5b

entry_bus:
    PRINT "bus: id "
    mov al, es:[di + 1]
    call puthex8
    PRINT " type '"
    mov si, 2
    mov cx, 6
    call print_field
    PRINT "'"
    call newline
    add di, 8
    jmp 5b

entry_ioapic:
    PRINT "ioapic: id "
    mov al, es:[di + 1]
    call puthex8
    PRINT " version "
    mov al, es:[di + 2]
    call puthex8
    PRINT " flags "
    mov al, es:[di + 3]
    call puthex8
    PRINT " address "
    mov eax, es:[di + 4]
    call puthex32
    call newline
    add di, 8
    jmp 5b

entry_intr:
    PRINT "intr:"
    call interrupt_entry
    add di, 8
    jmp 5b

entry_lintr:
    PRINT "lint:"
    call interrupt_entry
    add di, 8
    jmp 5b

7:  PRINT "end of table"
    call newline

# mpsearch's last resort, the ROM at F0000-FFFFF, must hold no (valid)
# floating pointer of its own.
    mov ax, 0xF000
    mov es, ax
    xor di, di
1:  cmp dword ptr es:[di], 0x5F504D5F
    jne 2f
    mov cx, 16
    call checksum
    jz 3f
2:  add di, 16
    jnz 1b
    PRINT "no floating pointer in the ROM"
    call newline
    EXIT 0
3:  PRINT "a floating pointer in the ROM at F000:"
    mov ax, di
    call puthex16
    call newline
    EXIT 1

8:  PRINT "no valid configuration table"
    call newline
    EXIT 1

# interrupt_entry: " type T flags F bus B irq I -> apic A pin P" for the
# I/O (type 3) and local (type 4) interrupt entries at ES:DI.
interrupt_entry:
    PRINT " type "
    mov al, es:[di + 1]
    call puthex8
    PRINT " flags "
    mov ax, es:[di + 2]
    call puthex16
    PRINT " bus "
    mov al, es:[di + 4]
    call puthex8
    PRINT " irq "
    mov al, es:[di + 5]
    call puthex8
    PRINT " -> apic "
    mov al, es:[di + 6]
    call puthex8
    PRINT " pin "
    mov al, es:[di + 7]
    call puthex8
    call newline
    ret

# checksum: ZF set if the CX bytes at ES:DI sum to 0.
checksum:
    push cx
    push si
    xor al, al
    mov si, di
1:  add al, es:[si]
    inc si
    loop 1b
    test al, al
    pop si
    pop cx
    ret

# phys_es_di: EAX = the physical address of ES:DI.
phys_es_di:
    mov ax, es
    movzx eax, ax
    shl eax, 4
    push edx
    movzx edx, di
    add eax, edx
    pop edx
    ret

# print_field: CX characters at ES:DI+SI.
print_field:
    push ax
    push si
    add si, di
1:  mov al, es:[si]
    call putc
    inc si
    loop 1b
    pop si
    pop ax
    ret

    SYS_END
