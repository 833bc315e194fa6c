# bios-kbd-std.S: the same keys through the original functions, INT 16h
# AH=01h (peek) and AH=00h (read): keystrokes only the Enhanced keyboard
# has are skipped, its gray keys look like the keypad's (see
# bios-kbd.inc).
    .set PEEK, 0x01
    .set READ, 0x00
    .include "bios-kbd.inc"
