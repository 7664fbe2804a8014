/* ARM semihosting (bkpt 0xAB) and the newlib hooks that route a test's printf and exit code
 * through it. QEMU needs -semihosting-config enable=on,target=native. */
#include <stdint.h>
#include <string.h>

#include "mps2.h"

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define SYS_READ 0x06
#define SYS_FLEN 0x0C
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static int sh_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int es_sh_open(const char *path, int mode)
{
    uint32_t a[3];
    a[0] = (uint32_t)(uintptr_t)path;
    a[1] = (uint32_t)mode;
    a[2] = (uint32_t)strlen(path);
    return sh_call(SYS_OPEN, a);
}

int es_sh_close(int fd)
{
    uint32_t a[1];
    a[0] = (uint32_t)fd;
    return sh_call(SYS_CLOSE, a);
}

long es_sh_flen(int fd)
{
    uint32_t a[1];
    a[0] = (uint32_t)fd;
    return sh_call(SYS_FLEN, a);
}

long es_sh_read(int fd, void *buf, size_t n)
{
    uint32_t a[3];
    a[0] = (uint32_t)fd;
    a[1] = (uint32_t)(uintptr_t)buf;
    a[2] = (uint32_t)n;
    return sh_call(SYS_READ, a);
}

long es_sh_write(int fd, const void *buf, size_t n)
{
    uint32_t a[3];
    a[0] = (uint32_t)fd;
    a[1] = (uint32_t)(uintptr_t)buf;
    a[2] = (uint32_t)n;
    return sh_call(SYS_WRITE, a);
}

void es_sh_write0(const char *s)
{
    (void)sh_call(SYS_WRITE0, s);
}

void es_sh_exit(int code)
{
    uint32_t a[2];
    a[0] = ADP_STOPPED_APPLICATION_EXIT;
    a[1] = (uint32_t)code;
    (void)sh_call(SYS_EXIT_EXTENDED, a);
    for (;;) {
    }
}

/* ---- newlib hooks (only pulled in by programs that use stdio: the unit tests) ---------- */
int _write(int fd, const char *buf, int len);
void _exit(int code);

int _write(int fd, const char *buf, int len)
{
    /* The console handle (":tt", mode "w"), opened on first use. */
    static int tt = -1;
    if (fd != 1 && fd != 2) {
        return -1;
    }
    if (tt < 0) {
        tt = es_sh_open(":tt", 4);
        if (tt < 0) {
            return -1;
        }
    }
    return len - (int)es_sh_write(tt, buf, (size_t)len);
}

void _exit(int code)
{
    es_sh_exit(code);
}
