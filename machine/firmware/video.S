# video.S: INT 10h for VGA text mode 3 (80x25, 16 colours, 8 pages), as
# RBIL INT 10 documents it (to be completed).

int10_handler:
    iret
