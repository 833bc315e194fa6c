# serial.S: INT 14h on the UARTs (to be completed).

int14_handler:
    iret
