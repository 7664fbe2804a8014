/* What hello_spikes needs from a board: print a line, and stop. board_mps2_an386.c does it for
 * QEMU's Cortex-M4 with semihosting; on your board, write to a UART and loop (or reset). */
#ifndef HELLO_SPIKES_BOARD_H
#define HELLO_SPIKES_BOARD_H

/* Write a NUL-terminated text (lines end with '\n'). */
void board_print(const char *text);

/* Stop: report the exit code (0: success) where the board can, then never return. */
void board_exit(int code);

#endif
