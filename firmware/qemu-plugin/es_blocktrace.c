/*
 * es_blocktrace: a QEMU TCG plugin that records, between two code addresses, every executed
 * translation block (its instructions and how often it ran), whether it was entered by a jump
 * (a taken branch) or by falling through, and the memory accesses of each instruction with the
 * misaligned ones counted apart. edgespike.sim.trace turns the record into estimated cycles.
 *
 * Build (qemu-plugin.h comes from Debian's qemu source package, fetch_header.sh):
 *   gcc -O2 -shared -fPIC -I<dir of qemu-plugin.h> -o libes_blocktrace.so es_blocktrace.c
 * Run:
 *   qemu-system-arm -icount shift=0 ... -plugin libes_blocktrace.so,out=trace.txt,
 *       begin=0x1728,end=0x9c8,sub_begin=0xe98,sub_end=0x12a0,subs=2,mark=0x81c
 *
 * Arguments (addresses in hex; lists separated by ':'):
 *   out=PATH        where the record is written when QEMU exits (required)
 *   begin=ADDR      a window opens when a block starting at ADDR runs (default: one window
 *                   from the first block to the end of the run)
 *   end=A1:A2..     the window closes when a block starting at one of these runs
 *   sub_begin=ADDR, sub_end=A1:.., subs=N
 *                   sub-windows inside a window (e.g. one layer step): the k-th sub-window of
 *                   a window is counted in bucket 1 + (k-1) mod N; the rest of the window in
 *                   bucket 0
 *   mark=ADDR       record the window's instruction count each time a block at ADDR runs
 *
 * Counting is exact under -icount: an inline counter adds one per executed instruction, and a
 * block cut short by an I/O access (QEMU re-executes the access alone, with memory
 * instrumentation only) is recorded as cut after the instructions it did run.
 *
 * Output (text, one item per line; per-bucket figures are N+1 space-separated integers):
 *   edgespike-blocktrace 1
 *   buckets NB
 *   windows W
 *   window_insns I0 I1 ...
 *   bucket_insns B0 B1 ...
 *   sub_windows S        sub-windows opened (all windows)
 *   marks M              then M lines: mark WINDOW COUNT
 *   tb VADDR NINSN CUTMIXED CUTAT | execs | jumps_in | jumps_out | cuts
 *   insn VADDR SIZE HEX | mem | mis1 | mis2
 *   edge FROM_VADDR FROM_NINSN TO_VADDR TO_NINSN | count       (after every tb line)
 * (insn lines follow their tb line; mis1: a halfword-aligned word or an odd halfword access,
 * one extra bus access; mis2: a byte-aligned word access, two extra.)
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_ENDS 16u
#define MAX_BUCKETS 65u
#define HASH_SIZE 65536u

typedef struct {
    uint64_t vaddr;
    uint32_t size;
    uint8_t bytes[4];
    uint64_t *mem, *mis1, *mis2; /* [g_nb] */
} insn_rec;

typedef struct tb_rec {
    uint64_t vaddr, end;
    uint32_t n;
    uint32_t cut_at;     /* instructions run by a cut execution (the last seen) */
    int cut_mixed;       /* cut executions stopped at different instructions */
    uint64_t *execs, *jumps_in, *jumps_out, *cuts; /* [g_nb] */
    insn_rec *insns;
    struct tb_rec *next;
} tb_rec;

/* A jump between two blocks (a taken branch, a call, a return), counted per bucket. */
typedef struct edge_rec {
    const tb_rec *from, *to;
    uint64_t *count; /* [g_nb] */
    struct edge_rec *next;
} edge_rec;

static char *g_out;
static uint64_t g_begin, g_sub_begin, g_mark;
static int g_has_begin, g_has_sub, g_has_mark;
static uint64_t g_ends[MAX_ENDS], g_sub_ends[MAX_ENDS];
static unsigned g_n_ends, g_n_sub_ends;
static unsigned g_subs = 1, g_nb = 1;

static tb_rec *g_hash[HASH_SIZE];
static edge_rec *g_edge_hash[HASH_SIZE];
static edge_rec **g_edges;
static size_t g_n_edges, g_cap_edges;
static uint64_t g_subs_seen; /* sub-windows opened, all windows */
static tb_rec **g_all;
static size_t g_n_all, g_cap_all;

static uint64_t g_count; /* executed instructions, whole run (inline op) */
static int g_active;
static uint64_t g_win_start;
static uint64_t *g_win_insns;
static size_t g_n_win, g_cap_win;
static uint64_t *g_bucket_insns;
static unsigned g_bucket;
static uint64_t g_sub_k;
static tb_rec *g_prev;
static uint64_t g_prev_count;
static unsigned g_prev_bucket;
static uint64_t (*g_marks)[2];
static size_t g_n_marks, g_cap_marks;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "es_blocktrace: out of memory\n");
        exit(1);
    }
    return p;
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return p;
    }
    *cap = *cap ? *cap * 2u : 1024u;
    while (*cap < need) {
        *cap *= 2u;
    }
    p = realloc(p, *cap * size);
    if (p == NULL) {
        fprintf(stderr, "es_blocktrace: out of memory\n");
        exit(1);
    }
    return p;
}

static int in_list(uint64_t a, const uint64_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (list[i] == a) {
            return 1;
        }
    }
    return 0;
}

static void count_edge(const tb_rec *from, const tb_rec *to, unsigned b)
{
    const size_t h = (size_t)(((uintptr_t)from >> 4) * 31u + ((uintptr_t)to >> 4)) % HASH_SIZE;
    edge_rec *e = g_edge_hash[h];
    while (e != NULL && (e->from != from || e->to != to)) {
        e = e->next;
    }
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->from = from;
        e->to = to;
        e->count = xcalloc(g_nb, sizeof(uint64_t));
        e->next = g_edge_hash[h];
        g_edge_hash[h] = e;
        g_edges = grow(g_edges, &g_cap_edges, g_n_edges + 1u, sizeof(*g_edges));
        g_edges[g_n_edges++] = e;
    }
    e->count[b]++;
}

/* Account the instructions run since the previous block, in that block's bucket. */
static void settle_prev(uint64_t now, uint64_t next_vaddr, int *jumped)
{
    *jumped = 0;
    if (g_prev == NULL) {
        return;
    }
    const uint64_t ran = now - g_prev_count;
    const unsigned b = g_prev_bucket;
    g_bucket_insns[b] += ran;
    if (ran < g_prev->n) {
        if (g_prev->cuts[b] != 0 && g_prev->cut_at != (uint32_t)ran) {
            g_prev->cut_mixed = 1;
        }
        g_prev->cuts[b]++;
        g_prev->cut_at = (uint32_t)ran;
    } else if (next_vaddr != g_prev->end) {
        g_prev->jumps_out[b]++;
        *jumped = 1;
    }
}

static void close_window(uint64_t now)
{
    g_win_insns = grow(g_win_insns, &g_cap_win, g_n_win + 1u, sizeof(*g_win_insns));
    g_win_insns[g_n_win++] = now - g_win_start;
    g_active = 0;
    g_prev = NULL;
}

static void open_window(uint64_t now)
{
    g_active = 1;
    g_win_start = now;
    g_prev = NULL;
    g_bucket = 0;
    g_sub_k = 0;
}

static void tb_exec(unsigned int vcpu, void *udata)
{
    tb_rec *cur = udata;
    const uint64_t now = g_count; /* before cur's instructions */
    int jumped = 0;
    (void)vcpu;
    if (g_active) {
        settle_prev(now, cur->vaddr, &jumped);
        if (g_n_ends != 0u && in_list(cur->vaddr, g_ends, g_n_ends)) {
            close_window(now);
            return;
        }
    } else if (g_has_begin && cur->vaddr == g_begin) {
        open_window(now);
    } else {
        return;
    }
    if (g_has_sub) {
        if (cur->vaddr == g_sub_begin) {
            g_sub_k++;
            g_subs_seen++;
            g_bucket = 1u + (unsigned)((g_sub_k - 1u) % g_subs);
        } else if (g_bucket != 0u && in_list(cur->vaddr, g_sub_ends, g_n_sub_ends)) {
            g_bucket = 0;
        }
    }
    if (g_has_mark && cur->vaddr == g_mark) {
        g_marks = grow(g_marks, &g_cap_marks, g_n_marks + 1u, sizeof(*g_marks));
        g_marks[g_n_marks][0] = g_n_win;
        g_marks[g_n_marks][1] = now - g_win_start;
        g_n_marks++;
    }
    cur->execs[g_bucket]++;
    if (jumped) {
        cur->jumps_in[g_bucket]++;
        count_edge(g_prev, cur, g_bucket);
    }
    g_prev = cur;
    g_prev_count = now;
    g_prev_bucket = g_bucket;
}

static void mem_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr,
                       void *udata)
{
    insn_rec *r = udata;
    (void)vcpu;
    if (!g_active) {
        return;
    }
    const unsigned size = 1u << qemu_plugin_mem_size_shift(info);
    r->mem[g_bucket]++;
    if ((vaddr & (size - 1u)) != 0u) {
        if (size == 4u && (vaddr & 1u)) {
            r->mis2[g_bucket]++;
        } else {
            r->mis1[g_bucket]++;
        }
    }
}

static tb_rec *lookup(uint64_t vaddr, uint32_t n)
{
    const size_t h = (size_t)((vaddr >> 1) ^ (n * 2654435761u)) % HASH_SIZE;
    for (tb_rec *r = g_hash[h]; r != NULL; r = r->next) {
        if (r->vaddr == vaddr && r->n == n) {
            return r;
        }
    }
    tb_rec *r = xcalloc(1, sizeof(*r));
    r->vaddr = vaddr;
    r->n = n;
    r->execs = xcalloc(g_nb, sizeof(uint64_t));
    r->jumps_in = xcalloc(g_nb, sizeof(uint64_t));
    r->jumps_out = xcalloc(g_nb, sizeof(uint64_t));
    r->cuts = xcalloc(g_nb, sizeof(uint64_t));
    r->insns = xcalloc(n, sizeof(insn_rec));
    r->next = g_hash[h];
    g_hash[h] = r;
    g_all = grow(g_all, &g_cap_all, g_n_all + 1u, sizeof(*g_all));
    g_all[g_n_all++] = r;
    return r;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    const uint32_t n = (uint32_t)qemu_plugin_tb_n_insns(tb);
    const uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    (void)id;
    if (n == 0u) {
        return;
    }
    /* A block QEMU re-translates for one I/O access instruments memory only: QEMU ignores
     * the exec registrations below for it, so its record only collects memory accesses
     * (merged by instruction address when the record is read). */
    tb_rec *r = lookup(vaddr, n);
    uint64_t end = vaddr;
    for (uint32_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        insn_rec *ir = &r->insns[i];
        if (ir->mem == NULL) {
            ir->vaddr = qemu_plugin_insn_vaddr(insn);
            ir->size = (uint32_t)qemu_plugin_insn_size(insn);
            memcpy(ir->bytes, qemu_plugin_insn_data(insn), ir->size > 4u ? 4u : ir->size);
            ir->mem = xcalloc(g_nb, sizeof(uint64_t));
            ir->mis1 = xcalloc(g_nb, sizeof(uint64_t));
            ir->mis2 = xcalloc(g_nb, sizeof(uint64_t));
        }
        end = ir->vaddr + ir->size;
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_count, 1);
        qemu_plugin_register_vcpu_mem_cb(insn, mem_access, QEMU_PLUGIN_CB_NO_REGS,
                                         QEMU_PLUGIN_MEM_RW, ir);
    }
    r->end = end;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, r);
}

static void put_bucket(FILE *f, const uint64_t *v)
{
    fputs(" |", f);
    for (unsigned b = 0; b < g_nb; b++) {
        fprintf(f, " %" PRIu64, v[b]);
    }
}

static int any(const uint64_t *v)
{
    for (unsigned b = 0; b < g_nb; b++) {
        if (v[b] != 0u) {
            return 1;
        }
    }
    return 0;
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    if (g_active) {
        int jumped;
        settle_prev(g_count, UINT64_MAX, &jumped);
        close_window(g_count);
    }
    FILE *f = fopen(g_out, "w");
    if (f == NULL) {
        fprintf(stderr, "es_blocktrace: cannot write %s\n", g_out);
        return;
    }
    fprintf(f, "edgespike-blocktrace 1\nbuckets %u\nwindows %zu\nwindow_insns", g_nb, g_n_win);
    for (size_t i = 0; i < g_n_win; i++) {
        fprintf(f, " %" PRIu64, g_win_insns[i]);
    }
    fputs("\nbucket_insns", f);
    for (unsigned b = 0; b < g_nb; b++) {
        fprintf(f, " %" PRIu64, g_bucket_insns[b]);
    }
    fprintf(f, "\nsub_windows %" PRIu64 "\nmarks %zu\n", g_subs_seen, g_n_marks);
    for (size_t i = 0; i < g_n_marks; i++) {
        fprintf(f, "mark %" PRIu64 " %" PRIu64 "\n", g_marks[i][0], g_marks[i][1]);
    }
    for (size_t k = 0; k < g_n_all; k++) {
        const tb_rec *r = g_all[k];
        int used = any(r->execs) || any(r->cuts);
        for (uint32_t i = 0; i < r->n && !used; i++) {
            used = any(r->insns[i].mem);
        }
        if (!used) {
            continue;
        }
        fprintf(f, "tb %" PRIx64 " %u %d %u", r->vaddr, r->n, r->cut_mixed, r->cut_at);
        put_bucket(f, r->execs);
        put_bucket(f, r->jumps_in);
        put_bucket(f, r->jumps_out);
        put_bucket(f, r->cuts);
        fputc('\n', f);
        for (uint32_t i = 0; i < r->n; i++) {
            const insn_rec *ir = &r->insns[i];
            fprintf(f, "insn %" PRIx64 " %u ", ir->vaddr, ir->size);
            for (uint32_t j = 0; j < ir->size && j < 4u; j++) {
                fprintf(f, "%02x", ir->bytes[j]);
            }
            put_bucket(f, ir->mem);
            put_bucket(f, ir->mis1);
            put_bucket(f, ir->mis2);
            fputc('\n', f);
        }
    }
    for (size_t k = 0; k < g_n_edges; k++) {
        const edge_rec *e = g_edges[k];
        fprintf(f, "edge %" PRIx64 " %u %" PRIx64 " %u", e->from->vaddr, e->from->n, e->to->vaddr,
                e->to->n);
        put_bucket(f, e->count);
        fputc('\n', f);
    }
    fclose(f);
}

static int parse_list(const char *val, uint64_t *out, unsigned *n)
{
    const char *p = val;
    while (*p != '\0') {
        char *e;
        if (*n >= MAX_ENDS) {
            return -1;
        }
        out[(*n)++] = strtoull(p, &e, 16);
        if (e == p || (*e != ':' && *e != '\0')) {
            return -1;
        }
        p = *e == ':' ? e + 1 : e;
    }
    return 0;
}

static int parse_addr(const char *val, uint64_t *out)
{
    char *e;
    *out = strtoull(val, &e, 16);
    return e == val || *e != '\0' ? -1 : 0;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        int bad = eq == NULL;
        if (!bad) {
            const size_t k = (size_t)(eq - a);
            const char *v = eq + 1;
            if (k == 3 && strncmp(a, "out", k) == 0) {
                g_out = strdup(v);
            } else if (k == 5 && strncmp(a, "begin", k) == 0) {
                bad = parse_addr(v, &g_begin);
                g_has_begin = 1;
            } else if (k == 3 && strncmp(a, "end", k) == 0) {
                bad = parse_list(v, g_ends, &g_n_ends);
            } else if (k == 9 && strncmp(a, "sub_begin", k) == 0) {
                bad = parse_addr(v, &g_sub_begin);
                g_has_sub = 1;
            } else if (k == 7 && strncmp(a, "sub_end", k) == 0) {
                bad = parse_list(v, g_sub_ends, &g_n_sub_ends);
            } else if (k == 4 && strncmp(a, "subs", k) == 0) {
                g_subs = (unsigned)strtoul(v, NULL, 10);
                bad = g_subs == 0u || g_subs + 1u > MAX_BUCKETS;
            } else if (k == 4 && strncmp(a, "mark", k) == 0) {
                bad = parse_addr(v, &g_mark);
                g_has_mark = 1;
            } else {
                bad = 1;
            }
        }
        if (bad) {
            fprintf(stderr, "es_blocktrace: bad argument '%s'\n", a);
            return -1;
        }
    }
    if (g_out == NULL) {
        fprintf(stderr, "es_blocktrace: give out=PATH\n");
        return -1;
    }
    if (g_has_begin != (g_n_ends != 0u) || (g_has_sub && g_n_sub_ends == 0u)) {
        fprintf(stderr, "es_blocktrace: begin needs end (and sub_begin needs sub_end)\n");
        return -1;
    }
    g_nb = g_has_sub ? g_subs + 1u : 1u;
    g_bucket_insns = xcalloc(g_nb, sizeof(uint64_t));
    if (!g_has_begin) {
        open_window(0);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
