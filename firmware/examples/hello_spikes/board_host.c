/* hello_spikes on this computer (to try a model.h before flashing it): board_print to stdout,
 * board_exit to exit(). Build it against the host library of the SDK:
 *   cc -std=c99 -I firmware/core -I firmware/examples/hello_spikes -I <folder of model.h> \
 *      firmware/examples/hello_spikes/main.c firmware/examples/hello_spikes/board_host.c \
 *      -L build/host -ledgespike_host -Wl,-rpath,$PWD/build/host -o hello_spikes */
#include <stdio.h>
#include <stdlib.h>

#include "board.h"

void board_print(const char *text)
{
    fputs(text, stdout);
}

void board_exit(int code)
{
    fflush(stdout);
    exit(code);
}
