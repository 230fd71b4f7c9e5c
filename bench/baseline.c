/* bench/baseline.c: a tight C baseline for `nestcache replay --policy per-vm-table:8 --json FILE`.
 *
 * Never shipped, never part of `swift build`: scripts/bench.sh builds it (cc -O2) into
 * .build-bench/ and compares its totals with nestcache's before timing both (BENCHMARKS.md,
 * "Replay vs C baseline and libCacheSim, by trace shape").
 *
 * Input: the native text format of DESIGN §5 (magic first line), or raw tracefs text (the
 * `/sys/kernel/tracing/trace` layout without a tgid column: one VM; kvm_exit/kvm_entry give each
 * thread's vCPU, kvm_nested_vmenter `vmcs:` gives an enter; no SVM, no perf script layout).
 * Engine: DESIGN §2-4 for per-vm-table:R (R = 8 unless -r R): per VM a GPA hash table (open
 * addressing, Fibonacci hashing, backward-shift deletion), a doubly linked free list, steals,
 * uncached, mapping at entry through the vCPU's active context, migrations from a GPA -> last
 * switcher map. Native lines are checked as nestcache checks them (field count, digits, op, hex,
 * alignment, time order, declared vCPU range, id alphabet); any error exits 65.
 * Output: the totals of DESIGN §4 (counters and gauges) as one line of JSON.
 * Memory: O(VMs + vCPUs + distinct GPAs), never the file's size (1 MiB read buffer). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NONE UINT64_MAX
static const char *path;
static long lineno;
static int R = 8, P_DEFAULT = 4;

static void die(const char *msg) { fprintf(stderr, "%s:%ld: %s\n", path, lineno, msg); exit(65); }
static void *xrealloc(void *p, size_t n) { p = realloc(p, n); if (!p) { perror("realloc"); exit(1); } return p; }

/* ---- GPA -> int32 map: linear probing, at most 3/4 full, no tombstones ---- */
typedef struct { uint64_t *k; int32_t *v; uint32_t mask, count, shift; } gmap;
static void gm_init(gmap *m, uint32_t slots) {
    m->k = xrealloc(NULL, slots * 8); m->v = xrealloc(NULL, slots * 4);
    memset(m->k, 0xff, slots * 8); m->mask = slots - 1; m->count = 0; m->shift = 64 - __builtin_ctz(slots);
}
static inline uint32_t gm_home(const gmap *m, uint64_t k) { return (uint32_t)(((k >> 12) * 0x9E3779B97F4A7C15ull) >> m->shift); }
static inline int32_t gm_get(const gmap *m, uint64_t k) {
    for (uint32_t i = gm_home(m, k);; i = (i + 1) & m->mask) {
        if (m->k[i] == k) return m->v[i];
        if (m->k[i] == NONE) return -1;
    }
}
static void gm_put_new(gmap *m, uint64_t k, int32_t v);
static void gm_grow(gmap *m) {
    gmap o = *m; gm_init(m, (o.mask + 1) * 2);
    for (uint32_t i = 0; i <= o.mask; i++) if (o.k[i] != NONE) gm_put_new(m, o.k[i], o.v[i]);
    free(o.k); free(o.v);
}
static void gm_put_new(gmap *m, uint64_t k, int32_t v) {
    if ((m->count + 1) * 4 > (m->mask + 1) * 3) gm_grow(m);
    uint32_t i = gm_home(m, k);
    while (m->k[i] != NONE) i = (i + 1) & m->mask;
    m->k[i] = k; m->v[i] = v; m->count++;
}
/* Files v under k; returns the value replaced, or -1. */
static inline int32_t gm_put(gmap *m, uint64_t k, int32_t v) {
    for (uint32_t i = gm_home(m, k);; i = (i + 1) & m->mask) {
        if (m->k[i] == k) { int32_t o = m->v[i]; m->v[i] = v; return o; }
        if (m->k[i] == NONE) break;
    }
    gm_put_new(m, k, v);
    return -1;
}
static void gm_del(gmap *m, uint64_t k) {
    uint32_t i = gm_home(m, k);
    while (m->k[i] != k) { if (m->k[i] == NONE) return; i = (i + 1) & m->mask; }
    uint32_t hole = i, j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->k[j] == NONE) break;
        uint32_t h = gm_home(m, m->k[j]);
        if (((j - h) & m->mask) >= ((j - hole) & m->mask)) { m->k[hole] = m->k[j]; m->v[hole] = m->v[j]; hole = j; }
    }
    m->k[hole] = NONE; m->count--;
}

/* ---- the engine: one VM under per-vm-table:R ---- */
typedef struct { uint64_t c[15]; } counters;  /* DESIGN §4 order */
enum { EVENTS, LOADS, ENTRIES, CLEARS, SWITCHES, HITS, MISSES, ALLOCS, RECYCLES, UNCACHED, STEALS,
       MIGRATIONS, MIGRATION_HITS, MAP_PAGES, UNMAP_PAGES };
static const char *names[15] = {"events", "loads", "entries", "clears", "switches", "hits", "misses",
    "allocs", "recycles", "uncached", "steals", "migrations", "migration_hits", "map_pages", "unmap_pages"};
static counters tot;

typedef struct {
    char id[64]; int idlen, declared_m, seen_count, nvcpu, nctx, capctx, free_count;
    uint64_t P, peak; long mapped_units;
    uint64_t *current; int32_t *active; uint8_t *seen;               /* per vCPU */
    uint64_t *mapped_for, *key; int32_t *owner, *prev, *next;       /* per context */
    int32_t free_head, free_tail;
    gmap table, last;
} vm_t;
static vm_t *vms; static int nvms, capvms;

static int32_t new_context(vm_t *m) {
    if (m->nctx == m->capctx) {
        m->capctx = m->capctx ? 2 * m->capctx : 16;
        m->mapped_for = xrealloc(m->mapped_for, m->capctx * 8); m->key = xrealloc(m->key, m->capctx * 8);
        m->owner = xrealloc(m->owner, m->capctx * 4); m->prev = xrealloc(m->prev, m->capctx * 4); m->next = xrealloc(m->next, m->capctx * 4);
    }
    int32_t c = m->nctx++;
    m->mapped_for[c] = NONE; m->key[c] = NONE; m->owner[c] = m->prev[c] = m->next[c] = -1;
    return c;
}
static inline void unlink_free(vm_t *m, int32_t c) {
    int32_t p = m->prev[c], n = m->next[c];
    if (p >= 0) m->next[p] = n; else m->free_head = n;
    if (n >= 0) m->prev[n] = p; else m->free_tail = p;
    m->prev[c] = m->next[c] = -1; m->free_count--;
}
static void see_vcpu(vm_t *m, int v) {
    if (v >= m->nvcpu) {
        int n = v + 1;
        m->current = xrealloc(m->current, n * 8); m->active = xrealloc(m->active, n * 4); m->seen = xrealloc(m->seen, n);
        for (int i = m->nvcpu; i < n; i++) { m->current[i] = NONE; m->active[i] = -1; m->seen[i] = 0; }
        m->nvcpu = n;
    }
    if (!m->seen[v]) { m->seen[v] = 1; m->seen_count++; }
}

static inline void apply(vm_t *m, int v, int op /* 0 load, 1 enter, 2 clear */, uint64_t g) {
    if (v >= m->nvcpu || !m->seen[v]) see_vcpu(m, v);
    tot.c[EVENTS]++;
    if (op != 2) {
        tot.c[op == 0 ? LOADS : ENTRIES]++;
        if (m->current[v] != g) {                                   /* a switch */
            tot.c[SWITCHES]++;
            int32_t prev = gm_put(&m->last, g, v);
            int mig = prev >= 0 && prev != v;
            tot.c[MIGRATIONS] += mig;
            int32_t c = gm_get(&m->table, g);
            if (c >= 0) {                                            /* hit */
                int32_t o = m->owner[c];
                if (o < 0) unlink_free(m, c);
                m->owner[c] = v; m->active[v] = c;
                tot.c[HITS]++; tot.c[STEALS] += (o >= 0 && o != v); tot.c[MIGRATION_HITS] += mig;
            } else {
                tot.c[MISSES]++;
                int cap = R * (m->declared_m ? m->declared_m : m->seen_count);
                if ((int)m->table.count < cap) {                     /* alloc */
                    c = new_context(m); tot.c[ALLOCS]++;
                } else if ((c = m->free_head) >= 0) {                /* recycle the oldest cleared */
                    unlink_free(m, c); gm_del(&m->table, m->key[c]); tot.c[RECYCLES]++;
                } else {
                    tot.c[UNCACHED]++;
                }
                if (c >= 0) { m->key[c] = g; m->owner[c] = v; gm_put(&m->table, g, c); m->active[v] = c; }
            }
            m->current[v] = g;
        }
        if (op == 1) {                                              /* mapping at entry */
            int32_t c = m->active[v];
            if (c < 0) { c = new_context(m); m->active[v] = c; }    /* private fallback */
            uint64_t old = m->mapped_for[c];
            if (old != g) {
                if (old != NONE) tot.c[UNMAP_PAGES] += m->P; else m->mapped_units++;
                tot.c[MAP_PAGES] += m->P; m->mapped_for[c] = g;
            }
        }
    } else {
        tot.c[CLEARS]++;
        if (m->current[v] == g) m->current[v] = NONE;
        int32_t c = gm_get(&m->table, g);
        if (c >= 0 && m->owner[c] >= 0) {                            /* detach to the free list's tail */
            m->owner[c] = -1; m->prev[c] = m->free_tail; m->next[c] = -1;
            if (m->free_tail >= 0) m->next[m->free_tail] = c; else m->free_head = c;
            m->free_tail = c; m->free_count++;
        }
    }
    uint64_t mapped = (uint64_t)m->mapped_units * m->P;
    if (mapped > m->peak) m->peak = mapped;
}

/* ---- VM ids: the last one, then a hash table of ids ---- */
static int32_t *vslot; static uint32_t vmask = 0;
static inline uint32_t idhash(const char *s, int n) { uint32_t h = 2166136261u; while (n--) h = (h ^ (uint8_t)*s++) * 16777619u; return h; }
static int valid_id(const char *s, int n) {
    if (n < 1 || n > 64) return 0;
    for (int i = 0; i < n; i++) { char c = s[i]; if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-')) return 0; }
    return 1;
}
static int find_vm(const char *s, int n, int create) {
    if (vmask == 0) { vmask = 63; vslot = xrealloc(NULL, 64 * 4); memset(vslot, 0xff, 64 * 4); }
    uint32_t i = idhash(s, n) & vmask;
    for (; vslot[i] >= 0; i = (i + 1) & vmask)
        if (vms[vslot[i]].idlen == n && memcmp(vms[vslot[i]].id, s, n) == 0) return vslot[i];
    if (!create) return -1;
    if (!valid_id(s, n)) die("vm: expected an id of 1 to 64 characters from [A-Za-z0-9_.:-]");
    if (nvms == capvms) { capvms = capvms ? 2 * capvms : 16; vms = xrealloc(vms, capvms * sizeof(vm_t)); }
    vm_t *m = &vms[nvms]; memset(m, 0, sizeof *m);
    memcpy(m->id, s, n); m->idlen = n; m->P = P_DEFAULT; m->free_head = m->free_tail = -1;
    gm_init(&m->table, 16); gm_init(&m->last, 16);
    vslot[i] = nvms++;
    if ((uint32_t)nvms * 2 > vmask) {                                /* rehash at 1/2 full */
        vmask = vmask * 2 + 1; vslot = xrealloc(vslot, (vmask + 1) * 4); memset(vslot, 0xff, (vmask + 1) * 4);
        for (int k = 0; k < nvms; k++) { uint32_t j = idhash(vms[k].id, vms[k].idlen) & vmask; while (vslot[j] >= 0) j = (j + 1) & vmask; vslot[j] = k; }
    }
    return nvms - 1;
}

/* ---- small field parsers over [p, e) ---- */
static inline int is_sp(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static inline const char *skip_sp(const char *p, const char *e) { while (p < e && is_sp(*p)) p++; return p; }
static inline const char *word_end(const char *p, const char *e) { while (p < e && !is_sp(*p)) p++; return p; }
static inline int dec(const char *p, const char *e, uint64_t *out) {
    if (p == e) return 0;
    uint64_t v = 0;
    for (; p < e; p++) { unsigned d = (unsigned char)*p - '0'; if (d > 9 || __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v)) return 0; }
    *out = v; return 1;
}
static inline int hex(const char *p, const char *e, uint64_t *out) {
    if (e - p < 1 || e - p > 16) return 0;
    uint64_t v = 0;
    for (; p < e; p++) {
        unsigned c = (unsigned char)*p, d;
        if (c - '0' < 10) d = c - '0'; else if ((c | 32) - 'a' < 6) d = (c | 32) - 'a' + 10; else return 0;
        v = v << 4 | d;
    }
    *out = v; return 1;
}

/* ---- native lines ---- */
static uint64_t last_time;
static void declare(const char *p, const char *e) {             /* after "# vm " */
    const char *a = skip_sp(p, e), *b = word_end(a, e);
    if (find_vm(a, (int)(b - a), 0) >= 0) die("# vm: declared twice or after its events (this baseline rejects both)");
    int i = find_vm(a, (int)(b - a), 1);  /* before &vms[]: it may move vms */
    vm_t *m = &vms[i];
    for (a = skip_sp(b, e); a < e; a = skip_sp(b, e)) {
        b = word_end(a, e);
        const char *eq = memchr(a, '=', b - a); uint64_t n;
        if (!eq || !dec(eq + 1, b, &n)) die("# vm: expected key=value");
        if (eq - a == 8 && !memcmp(a, "l1_vcpus", 8) && n >= 1 && n <= 4096) m->declared_m = (int)n;
        else if (eq - a == 10 && !memcmp(a, "memory_mib", 10) && n >= 1) {}
        else if (eq - a == 17 && !memcmp(a, "pages_per_context", 17) && n >= 1 && n <= 64) m->P = n;
        else die("# vm: bad key or value");
    }
}
static int last_vm = -1;
static void native_line(const char *p, const char *e) {
    const char *a = skip_sp(p, e);
    if (a == e) return;
    if (*a == '#') {
        const char *b = word_end(a, e);
        if (b - a == 1) { a = skip_sp(b, e); b = word_end(a, e); if (b - a == 2 && !memcmp(a, "vm", 2)) declare(b, e); }
        return;
    }
    uint64_t t, v, g; const char *b = word_end(a, e);
    if (!dec(a, b, &t)) die("time_ns: expected an unsigned decimal integer below 2^64");
    if (t < last_time) die("time_ns is before the previous event's (times never decrease)");
    a = skip_sp(b, e); b = word_end(a, e);
    int n = (int)(b - a), vm = last_vm;
    if (vm < 0 || vms[vm].idlen != n || memcmp(vms[vm].id, a, n)) last_vm = vm = find_vm(a, n, 1);
    vm_t *m = &vms[vm];
    a = skip_sp(b, e); b = word_end(a, e);
    if (!dec(a, b, &v) || v >= 4096) die("vcpu: expected a decimal index below 4096");
    if (m->declared_m && v >= (uint64_t)m->declared_m) die("vcpu is out of range of the VM's l1_vcpus");
    a = skip_sp(b, e); b = word_end(a, e);
    int op;
    if (b - a == 5 && !memcmp(a, "enter", 5)) op = 1;
    else if (b - a == 4 && !memcmp(a, "load", 4)) op = 0;
    else if (b - a == 5 && !memcmp(a, "clear", 5)) op = 2;
    else die("op: expected load, enter or clear");
    a = skip_sp(b, e); b = word_end(a, e);
    if (b - a < 3 || a[0] != '0' || a[1] != 'x' || !hex(a + 2, b, &g)) die("gpa: expected 0x and 1 to 16 hex digits");
    if ((g & 0xfff) || g >= (1ull << 52)) die("gpa: not 4 KiB aligned below 2^52");
    if (skip_sp(b, e) != e) die("expected 5 fields 'TIME_NS VM VCPU OP GPA'");
    last_time = t;
    apply(m, (int)v, op, g);
}

/* ---- raw tracefs lines: COMM-PID [CPU] FLAGS SECONDS.MICROS: EVENT: BODY ---- */
static gmap vcpu_of_pid;                                        /* pid -> vCPU (keys pid << 12) */
static int ftrace_vm = -1;
static uint64_t unresolved_clears, evmcs_skipped;
static void ftrace_line(const char *p, const char *e) {
    const char *a = skip_sp(p, e);
    if (a == e || *a == '#') return;
    const char *br = memchr(a, '[', e - a);
    if (!br) die("expected an ftrace event line");
    const char *d = br;                                          /* "-PID" before the spaces */
    while (d > a && is_sp(d[-1])) d--;
    const char *pe = d; while (d > a && (unsigned)(d[-1] - '0') < 10) d--;
    uint64_t pid, ts, us, vmcs, v;
    if (d == a || d[-1] != '-' || !dec(d, pe, &pid)) die("expected COMM-PID");
    const char *comm = a, *comm_end = d - 1;
    const char *col = memchr(br, ':', e - br);                    /* SECONDS.MICROS: */
    if (!col) die("expected a timestamp");
    const char *dot = col; while (dot > br && *dot != '.') dot--;
    const char *tb = dot; while (tb > br && !is_sp(tb[-1])) tb--;
    if (!dec(tb, dot, &ts) || !dec(dot + 1, col, &us)) die("expected SECONDS.MICROS:");
    a = skip_sp(col + 1, e);
    const char *en = memchr(a, ':', e - a);
    if (!en) die("expected EVENT: BODY");
    const char *body = skip_sp(en + 1, e);
    size_t n = en - a;
    if ((n == 8 && !memcmp(a, "kvm_exit", 8)) || (n == 9 && !memcmp(a, "kvm_entry", 9)) || (n == 17 && !memcmp(a, "kvm_nested_vmexit", 17))) {
        if (e - body > 5 && !memcmp(body, "vcpu ", 5)) {
            const char *x = body + 5, *y = x; while (y < e && (unsigned)(*y - '0') < 10) y++;
            if (!dec(x, y, &v) || v >= 4096) die("vcpu: expected a decimal index below 4096");
            gm_put(&vcpu_of_pid, pid << 12, (int32_t)v);
            if (n == 8 && e - y >= 16 && !memcmp(y, " reason VMCLEAR", 15) && is_sp(y[15])) unresolved_clears++;
        }
    } else if (n == 18 && !memcmp(a, "kvm_nested_vmenter", 18)) {
        const char *x = memmem(body, e - body, "vmcs: 0x", 8);
        if (!x) die("kvm_nested_vmenter: expected vmcs: 0x...");
        x += 8; const char *y = word_end(x, e);
        if (!hex(x, y, &vmcs)) die("vmcs: expected hex");
        if (vmcs == NONE) { evmcs_skipped++; return; }
        if ((vmcs & 0xfff) || vmcs >= (1ull << 52)) die("vmcs: not 4 KiB aligned below 2^52");
        int32_t vc = gm_get(&vcpu_of_pid, pid << 12);
        if (vc < 0) {                                            /* "CPU N/KVM" comm */
            const char *c = skip_sp(comm, comm_end), *s = c + 4;
            const char *sl = memchr(c, '/', comm_end - c);
            if (comm_end - c < 9 || memcmp(c, "CPU ", 4) || !sl || !dec(s, sl, &v) || v >= 4096) die("no vCPU for this thread (this baseline has no pid numbering)");
            vc = (int32_t)v;
        }
        apply(&vms[ftrace_vm], vc, 1, vmcs);
    } else if (n == 16 && !memcmp(a, "kvm_nested_vmrun", 16)) {
        die("kvm_nested_vmrun (SVM): not in this baseline");
    }
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "r:p:")) != -1) {
        if (opt == 'r') R = atoi(optarg); else if (opt == 'p') P_DEFAULT = atoi(optarg);
        else { fprintf(stderr, "usage: baseline [-r R] [-p PAGES] FILE\n"); return 64; }
    }
    if (optind != argc - 1 || R < 1 || P_DEFAULT < 1) { fprintf(stderr, "usage: baseline [-r R] [-p PAGES] FILE\n"); return 64; }
    path = argv[optind];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return 66; }
    enum { CHUNK = 1 << 20 };
    char *buf = xrealloc(NULL, 2 * CHUNK);
    size_t len = 0; int mode = -1;                                /* 0 native, 1 ftrace */
    for (;;) {
        ssize_t r = read(fd, buf + len, 2 * CHUNK - len);
        if (r < 0) { perror(path); return 1; }
        len += (size_t)r;
        const char *p = buf, *end = buf + len;
        for (;;) {
            const char *nl = memchr(p, '\n', end - p);
            if (!nl) { if (r > 0) break; if (p == end) break; nl = end; }   /* last line without \n */
            lineno++;
            if (mode < 0) {
                const char *e = nl; while (e > p && is_sp(e[-1])) e--;
                mode = !(e - p == 20 && !memcmp(p, "# nestcache-trace v1", 20));
                if (mode == 1) {                                  /* the VM: the file's base name */
                    const char *base = strrchr(path, '/'); base = base ? base + 1 : path;
                    const char *dotp = strchr(base, '.');
                    ftrace_vm = find_vm(base, dotp ? (int)(dotp - base) : (int)strlen(base), 1);
                    gm_init(&vcpu_of_pid, 64);
                    ftrace_line(p, nl);
                }
            } else if (mode == 0) native_line(p, nl);
            else ftrace_line(p, nl);
            p = nl + (nl < end);
        }
        if (r == 0) break;
        if (end - p >= CHUNK) die("line longer than 1 MiB");
        len = (size_t)(end - p);
        memmove(buf, p, len);
    }
    free(buf);
    if (mode < 0) die("empty file");
    uint64_t contexts = 0, free_count = 0, mapped = 0, peak = 0;
    for (int i = 0; i < nvms; i++) {
        contexts += vms[i].nctx; free_count += vms[i].free_count;
        mapped += (uint64_t)vms[i].mapped_units * vms[i].P; peak += vms[i].peak;
    }
    printf("{");
    for (int i = 0; i < 15; i++) printf("\"%s\": %llu, ", names[i], (unsigned long long)tot.c[i]);
    printf("\"contexts\": %llu, \"free\": %llu, \"mapped_pages\": %llu, \"peak_mapped_pages\": %llu, \"vms\": %d",
           (unsigned long long)contexts, (unsigned long long)free_count, (unsigned long long)mapped, (unsigned long long)peak, nvms);
    if (mode == 1) printf(", \"unresolved_clears\": %llu, \"evmcs_skipped\": %llu", (unsigned long long)unresolved_clears, (unsigned long long)evmcs_skipped);
    printf("}\n");
    return 0;
}
