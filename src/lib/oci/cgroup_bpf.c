/* The cgroup v2 device controller: v2 has no devices.allow; access to device nodes is decided by
 * an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup. The program is
 * built here from OCI's rules, with raw bpf(2) calls. */
#include "cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "../base/json.h"
#include "../base/log.h"

/* At most this many rules; each takes at most 9 instructions, far below the kernel's limit. */
#define MAX_RULES     4096
#define MAX_OLD_PROGS 64

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i = {.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
    return i;
}

/* Registers the program keeps the request in. */
enum {
    R_CTX = BPF_REG_1,
    R_TMP = BPF_REG_1, /* the context is not needed once read */
    R_TYPE = BPF_REG_2,
    R_ACCESS = BPF_REG_3,
    R_MAJOR = BPF_REG_4,
    R_MINOR = BPF_REG_5,
};

struct rule {
    bool allow;
    int type;        /* BPF_DEVCG_DEV_*, or 0 for any */
    int64_t major;   /* -1: any */
    int64_t minor;   /* -1: any */
    unsigned access; /* BPF_DEVCG_ACC_* bits */
};

static int parse_rule(json_object *d, struct rule *r, bool *skip, struct ks_error **err)
{
    const char *type = ks_json_str(d, "type");
    const char *access = ks_json_str(d, "access");
    *skip = false;
    r->allow = ks_json_bool(d, "allow", false);
    switch (type && type[0] ? type[0] : 'a') {
    case 'a':
        r->type = 0;
        break;
    case 'b':
        r->type = BPF_DEVCG_DEV_BLOCK;
        break;
    case 'c':
    case 'u':
        r->type = BPF_DEVCG_DEV_CHAR;
        break;
    case 'p':
        /* FIFOs are not device nodes: the controller never sees them. */
        *skip = true;
        return 0;
    default:
        return ks_error_msg(err, "invalid device type `%s`", type);
    }
    if (type && type[0] && type[1])
        return ks_error_msg(err, "invalid device type `%s`", type);
    r->major = -1;
    r->minor = -1;
    int64_t v;
    if (ks_cgroup_json_int(d, "major", &v) && v >= 0)
        r->major = v;
    if (ks_cgroup_json_int(d, "minor", &v) && v >= 0)
        r->minor = v;
    if (r->major > UINT32_MAX || r->minor > UINT32_MAX)
        return ks_error_msg(err, "device number out of range");
    r->access = 0;
    if (access == NULL || access[0] == '\0')
        access = "rwm";
    for (const char *p = access; *p; p++) {
        switch (*p) {
        case 'r':
            r->access |= BPF_DEVCG_ACC_READ;
            break;
        case 'w':
            r->access |= BPF_DEVCG_ACC_WRITE;
            break;
        case 'm':
            r->access |= BPF_DEVCG_ACC_MKNOD;
            break;
        default:
            return ks_error_msg(err, "invalid device access `%s`", access);
        }
    }
    return 0;
}

#define ACC_ALL (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

/* Emits one rule: a run of tests that each jump past the rule when they fail, then "return
 * allow". Returns the number of instructions; *terminal when the rule matches every request. */
static size_t emit_rule(const struct rule *r, struct bpf_insn *out, bool *terminal)
{
    struct bpf_insn b[16];
    size_t n = 0;
    size_t jumps[8], nj = 0;
    if (r->type) {
        jumps[nj++] = n;
        b[n++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_TYPE, 0, 0, r->type);
    }
    if (r->allow && r->access != ACC_ALL) {
        /* An allow rule covers a request whose bits are all in the rule. */
        b[n++] = insn(BPF_ALU | BPF_MOV | BPF_X, R_TMP, R_ACCESS, 0, 0);
        b[n++] = insn(BPF_ALU | BPF_AND | BPF_K, R_TMP, 0, 0, (int32_t)(~r->access & ACC_ALL));
        jumps[nj++] = n;
        b[n++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_TMP, 0, 0, 0);
    } else if (!r->allow && r->access != ACC_ALL) {
        /* A deny rule hits a request that asks for any of its bits. */
        b[n++] = insn(BPF_ALU | BPF_MOV | BPF_X, R_TMP, R_ACCESS, 0, 0);
        b[n++] = insn(BPF_ALU | BPF_AND | BPF_K, R_TMP, 0, 0, (int32_t)r->access);
        jumps[nj++] = n;
        b[n++] = insn(BPF_JMP32 | BPF_JEQ | BPF_K, R_TMP, 0, 0, 0);
    }
    if (r->major >= 0) {
        jumps[nj++] = n;
        b[n++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MAJOR, 0, 0, (int32_t)(uint32_t)r->major);
    }
    if (r->minor >= 0) {
        jumps[nj++] = n;
        b[n++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MINOR, 0, 0, (int32_t)(uint32_t)r->minor);
    }
    b[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0);
    b[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (size_t j = 0; j < nj; j++)
        b[jumps[j]].off = (int16_t)(n - jumps[j] - 1);
    memcpy(out, b, n * sizeof(*b));
    *terminal = nj == 0;
    return n;
}

/* The program: read the request, then the rules from last to first (the last matching rule
 * decides, as later writes to v1's lists override earlier ones), and deny when none matches. */
static int build_program(json_object *devices, struct bpf_insn **ret, size_t *ret_n,
                         struct ks_error **err)
{
    size_t nrules = json_object_array_length(devices);
    if (nrules > MAX_RULES)
        return ks_error_msg(err, "too many device rules (%zu)", nrules);
    _cleanup_free_ struct bpf_insn *prog = calloc(8 + nrules * 16, sizeof(*prog));
    if (prog == NULL)
        return ks_error_set(err, ENOMEM, "device program");
    size_t n = 0;
    /* access_type is (access << 16) | type. */
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_TYPE, R_CTX, 0, 0);
    prog[n++] = insn(BPF_ALU | BPF_AND | BPF_K, R_TYPE, 0, 0, 0xffff);
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_ACCESS, R_CTX, 0, 0);
    prog[n++] = insn(BPF_ALU | BPF_RSH | BPF_K, R_ACCESS, 0, 0, 16);
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MAJOR, R_CTX, 4, 0);
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MINOR, R_CTX, 8, 0);
    bool terminal = false;
    for (size_t i = nrules; i-- > 0 && !terminal;) {
        struct rule r = {0};
        bool skip;
        int rc = parse_rule(json_object_array_get_idx(devices, i), &r, &skip, err);
        if (rc < 0)
            return ks_error_wrap(err, "device rule %zu", i);
        if (!skip)
            n += emit_rule(&r, prog + n, &terminal);
    }
    /* Code after a rule that matches everything would be unreachable, which the verifier
     * rejects. */
    if (!terminal) {
        prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
        prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    *ret = TAKE_PTR(prog);
    *ret_n = n;
    return 0;
}

static int load_program(const struct bpf_insn *prog, size_t n, struct ks_error **err)
{
    static const char license[] = "Apache-2.0";
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)prog;
    attr.insn_cnt = (uint32_t)n;
    attr.license = (uint64_t)(uintptr_t)license;
    memcpy(attr.prog_name, "kiste_devices", sizeof("kiste_devices"));
    int fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == EINVAL || e == EACCES) {
        /* Ask again with the verifier's log for the message. */
        _cleanup_free_ char *log = calloc(1, 16384);
        if (log) {
            attr.log_buf = (uint64_t)(uintptr_t)log;
            attr.log_size = 16384;
            attr.log_level = 1;
            fd = sys_bpf(BPF_PROG_LOAD, &attr);
            if (fd >= 0)
                return fd;
            return ks_error_set(err, e, "load device program (%zu instructions): %s", n, log);
        }
    }
    return ks_error_set(err, e, "load device program (%zu instructions)", n);
}

int ks_cgroup_bpf_devices_apply(int dirfd, json_object *devices, struct ks_error **err)
{
    _cleanup_free_ struct bpf_insn *prog = NULL;
    size_t n = 0;
    int r = build_program(devices, &prog, &n, err);
    if (r < 0)
        return r;

    /* The programs attached before, to detach once the new one is in place: there is never a
     * moment without rules. */
    uint32_t old[MAX_OLD_PROGS];
    uint32_t n_old = 0;
    union bpf_attr q;
    memset(&q, 0, sizeof(q));
    q.query.target_fd = (uint32_t)dirfd;
    q.query.attach_type = BPF_CGROUP_DEVICE;
    q.query.prog_ids = (uint64_t)(uintptr_t)old;
    q.query.prog_cnt = MAX_OLD_PROGS;
    if (sys_bpf(BPF_PROG_QUERY, &q) == 0)
        n_old = q.query.prog_cnt;
    else if (errno != EINVAL && errno != ENOSYS)
        return ks_error_set(err, errno, "query device programs");

    _cleanup_close_ int fd = load_program(prog, n, err);
    if (fd < 0)
        return fd;

    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t)dirfd;
    a.attach_bpf_fd = (uint32_t)fd;
    a.attach_type = BPF_CGROUP_DEVICE;
    a.attach_flags = BPF_F_ALLOW_MULTI;
    if (sys_bpf(BPF_PROG_ATTACH, &a) < 0)
        return ks_error_set(err, errno, "attach device program");

    for (uint32_t i = 0; i < n_old && i < MAX_OLD_PROGS; i++) {
        union bpf_attr g;
        memset(&g, 0, sizeof(g));
        g.prog_id = old[i];
        _cleanup_close_ int ofd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &g);
        if (ofd < 0) {
            if (errno == ENOENT)
                continue;
            return ks_error_set(err, errno, "open device program %u", old[i]);
        }
        union bpf_attr d;
        memset(&d, 0, sizeof(d));
        d.target_fd = (uint32_t)dirfd;
        d.attach_bpf_fd = (uint32_t)ofd;
        d.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, &d) < 0 && errno != ENOENT)
            return ks_error_set(err, errno, "detach device program %u", old[i]);
    }
    return 0;
}
