# bios-kbd.S: keystrokes through the Enhanced keyboard's functions, INT
# 16h AH=11h (peek) and AH=10h (read): every keystroke as the BIOS
# stored it (see bios-kbd.inc).
    .set PEEK, 0x11
    .set READ, 0x10
    .include "bios-kbd.inc"
