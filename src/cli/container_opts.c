/* The flags of `create` and `run`, parsed into Docker's {"Config": …, "HostConfig": …} pair as
 * Docker's client builds it. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "attach.h"
#include "container.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/net/dns.h"
#include "lib/net/net.h"
#include "lib/volume/volume.h"

enum {
    OPT_RM = 1000,
    OPT_NAME,
    OPT_ENV_FILE,
    OPT_ENTRYPOINT,
    OPT_LABEL_FILE,
    OPT_RESTART,
    OPT_LOG_DRIVER,
    OPT_LOG_OPT,
    OPT_CAP_ADD,
    OPT_CAP_DROP,
    OPT_PRIVILEGED,
    OPT_READ_ONLY,
    OPT_SECURITY_OPT,
    OPT_TMPFS,
    OPT_MEMORY_SWAP,
    OPT_MEMORY_RESERVATION,
    OPT_CPUS,
    OPT_CPUSET_CPUS,
    OPT_PIDS_LIMIT,
    OPT_ULIMIT,
    OPT_DEVICE,
    OPT_OOM_SCORE_ADJ,
    OPT_INIT,
    OPT_HEALTH_CMD,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTH_RETRIES,
    OPT_HEALTH_START_PERIOD,
    OPT_NO_HEALTHCHECK,
    OPT_STOP_SIGNAL,
    OPT_STOP_TIMEOUT,
    OPT_PULL,
    OPT_SIG_PROXY,
    OPT_DETACH_KEYS,
    OPT_PLATFORM,
    OPT_NETWORK,
    OPT_SHM_SIZE,
    OPT_DOMAINNAME,
    OPT_DNS,
    OPT_DNS_SEARCH,
    OPT_DNS_OPTION,
    OPT_ADD_HOST,
    OPT_LINK,
    OPT_GROUP_ADD,
    OPT_MOUNT,
    OPT_VOLUMES_FROM,
    OPT_EXPOSE,
    OPT_IP,
    OPT_IP6,
    OPT_MAC_ADDRESS,
    OPT_NETWORK_ALIAS,
    OPT_PID,
    OPT_IPC,
    OPT_UTS,
    OPT_CGROUPNS,
    OPT_USERNS,
    OPT_SYSCTL,
    OPT_CGROUP_PARENT,
    OPT_HELP,
};

static const struct option run_options[] = {
    {"detach", no_argument, NULL, 'd'},
    {"interactive", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"rm", no_argument, NULL, OPT_RM},
    {"name", required_argument, NULL, OPT_NAME},
    {"hostname", required_argument, NULL, 'h'},
    {"domainname", required_argument, NULL, OPT_DOMAINNAME},
    {"env", required_argument, NULL, 'e'},
    {"env-file", required_argument, NULL, OPT_ENV_FILE},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
    {"label", required_argument, NULL, 'l'},
    {"label-file", required_argument, NULL, OPT_LABEL_FILE},
    {"group-add", required_argument, NULL, OPT_GROUP_ADD},
    {"restart", required_argument, NULL, OPT_RESTART},
    {"log-driver", required_argument, NULL, OPT_LOG_DRIVER},
    {"log-opt", required_argument, NULL, OPT_LOG_OPT},
    {"cap-add", required_argument, NULL, OPT_CAP_ADD},
    {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
    {"privileged", no_argument, NULL, OPT_PRIVILEGED},
    {"read-only", no_argument, NULL, OPT_READ_ONLY},
    {"security-opt", required_argument, NULL, OPT_SECURITY_OPT},
    {"tmpfs", required_argument, NULL, OPT_TMPFS},
    {"memory", required_argument, NULL, 'm'},
    {"memory-swap", required_argument, NULL, OPT_MEMORY_SWAP},
    {"memory-reservation", required_argument, NULL, OPT_MEMORY_RESERVATION},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"cpu-shares", required_argument, NULL, 'c'},
    {"cpuset-cpus", required_argument, NULL, OPT_CPUSET_CPUS},
    {"pids-limit", required_argument, NULL, OPT_PIDS_LIMIT},
    {"ulimit", required_argument, NULL, OPT_ULIMIT},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"oom-score-adj", required_argument, NULL, OPT_OOM_SCORE_ADJ},
    {"init", no_argument, NULL, OPT_INIT},
    {"health-cmd", required_argument, NULL, OPT_HEALTH_CMD},
    {"health-interval", required_argument, NULL, OPT_HEALTH_INTERVAL},
    {"health-timeout", required_argument, NULL, OPT_HEALTH_TIMEOUT},
    {"health-retries", required_argument, NULL, OPT_HEALTH_RETRIES},
    {"health-start-period", required_argument, NULL, OPT_HEALTH_START_PERIOD},
    {"no-healthcheck", no_argument, NULL, OPT_NO_HEALTHCHECK},
    {"stop-signal", required_argument, NULL, OPT_STOP_SIGNAL},
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"pull", required_argument, NULL, OPT_PULL},
    {"sig-proxy", optional_argument, NULL, OPT_SIG_PROXY},
    {"detach-keys", required_argument, NULL, OPT_DETACH_KEYS},
    {"platform", required_argument, NULL, OPT_PLATFORM},
    {"network", required_argument, NULL, OPT_NETWORK},
    {"net", required_argument, NULL, OPT_NETWORK},
    {"dns", required_argument, NULL, OPT_DNS},
    {"dns-search", required_argument, NULL, OPT_DNS_SEARCH},
    {"dns-option", required_argument, NULL, OPT_DNS_OPTION},
    {"dns-opt", required_argument, NULL, OPT_DNS_OPTION},
    {"add-host", required_argument, NULL, OPT_ADD_HOST},
    {"link", required_argument, NULL, OPT_LINK},
    {"shm-size", required_argument, NULL, OPT_SHM_SIZE},
    {"volume", required_argument, NULL, 'v'},
    {"mount", required_argument, NULL, OPT_MOUNT},
    {"volumes-from", required_argument, NULL, OPT_VOLUMES_FROM},
    {"publish", required_argument, NULL, 'p'},
    {"publish-all", no_argument, NULL, 'P'},
    {"expose", required_argument, NULL, OPT_EXPOSE},
    {"ip", required_argument, NULL, OPT_IP},
    {"ip6", required_argument, NULL, OPT_IP6},
    {"mac-address", required_argument, NULL, OPT_MAC_ADDRESS},
    {"network-alias", required_argument, NULL, OPT_NETWORK_ALIAS},
    {"net-alias", required_argument, NULL, OPT_NETWORK_ALIAS},
    {"pid", required_argument, NULL, OPT_PID},
    {"ipc", required_argument, NULL, OPT_IPC},
    {"uts", required_argument, NULL, OPT_UTS},
    {"cgroupns", required_argument, NULL, OPT_CGROUPNS},
    {"userns", required_argument, NULL, OPT_USERNS},
    {"sysctl", required_argument, NULL, OPT_SYSCTL},
    {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
    {"help", no_argument, NULL, OPT_HELP},
    {0},
};

static int bad(const char *cmd, const char *fmt, const char *v)
{
    fprintf(stderr, "kiste %s: ", cmd);
    fprintf(stderr, fmt, v);
    fprintf(stderr, "\nSee 'kiste %s --help'.\n", cmd);
    return 125;
}

/* Go's time.ParseDuration for what flags use: "1h30m", "10s", "1.5s", "500ms", "0". */
static int parse_duration(const char *s, int64_t *ret)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1},  {"us", 1e3}, {"µs", 1e3},  {"ms", 1e6},
                 {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    if (strcmp(s, "0") == 0) {
        *ret = 0;
        return 0;
    }
    double total = 0;
    const char *p = s;
    if (*p == '\0')
        return -EINVAL;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0)
            return -EINVAL;
        p = end;
        size_t best = 0, best_len = 0;
        for (size_t i = 0; i < KS_ELEMENTSOF(units); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0 && n > best_len) {
                best = i;
                best_len = n;
            }
        }
        if (best_len == 0)
            return -EINVAL;
        total += v * units[best].ns;
        p += best_len;
    }
    if (total > 9.2e18)
        return -ERANGE;
    *ret = (int64_t)total;
    return 0;
}

static json_object *obj_child(json_object *o, const char *key, json_type type)
{
    json_object *v = ks_json_get_type(o, key, type);
    if (v == NULL) {
        v = type == json_type_array ? json_object_new_array() : json_object_new_object();
        json_object_object_add(o, key, v);
    }
    return v;
}

static void push(json_object *o, const char *key, const char *v)
{
    json_object_array_add(obj_child(o, key, json_type_array), json_object_new_string(v));
}

/* Sets KEY=value in c's Env, replacing an earlier value of KEY: a later -e wins over an
 * --env-file line, as with Docker. */
static void set_env(json_object *c, const char *kv)
{
    json_object *env = obj_child(c, "Env", json_type_array);
    size_t klen = strcspn(kv, "=");
    for (size_t i = 0; i < json_object_array_length(env); i++) {
        const char *cur = json_object_get_string(json_object_array_get_idx(env, i));
        if (cur && strncmp(cur, kv, klen) == 0 && (cur[klen] == '=' || cur[klen] == '\0')) {
            json_object_array_put_idx(env, i, json_object_new_string(kv));
            return;
        }
    }
    json_object_array_add(env, json_object_new_string(kv));
}

/* "KEY=value" as is; "KEY" takes our own environment's value, or is dropped when unset. */
static void add_env(json_object *c, const char *kv)
{
    if (strchr(kv, '=') == NULL) {
        const char *v = getenv(kv);
        if (v == NULL)
            return;
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s=%s", kv, v) >= 0)
            set_env(c, full);
        return;
    }
    set_env(c, kv);
}

static void add_label(json_object *c, const char *kv)
{
    json_object *labels = obj_child(c, "Labels", json_type_object);
    const char *eq = strchr(kv, '=');
    _cleanup_free_ char *k = eq ? strndup(kv, (size_t)(eq - kv)) : strdup(kv);
    if (k)
        json_object_object_add(labels, k, json_object_new_string(eq ? eq + 1 : ""));
}

/* Lines of an --env-file or --label-file: comments and blank lines skipped. */
static int read_lines(const char *cmd, const char *path, json_object *c,
                      void (*fn)(json_object *, const char *))
{
    _cleanup_free_ char *buf = NULL;
    struct ks_error *e = NULL;
    if (ks_read_file(path, &buf, NULL, &e) < 0) {
        fprintf(stderr, "kiste: %s\n", e->msg);
        ks_error_free(e);
        return 125;
    }
    for (char *save = NULL, *p = buf, *line; (line = strtok_r(p, "\n", &save)); p = NULL) {
        while (isspace((unsigned char)*line))
            line++;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        if (*line == '\0' || *line == '#')
            continue;
        fn(c, line);
    }
    (void)cmd;
    return 0;
}

int ks_cli_add_env(const char *cmd, json_object *c, const char *kv, const char *path)
{
    if (path)
        return read_lines(cmd, path, c, add_env);
    add_env(c, kv);
    return 0;
}

static int set_size(const char *cmd, json_object *hc, const char *key, const char *v)
{
    int64_t n;
    if (strcmp(v, "-1") == 0 && strcmp(key, "MemorySwap") == 0)
        n = -1;
    else if (ks_parse_size(v, &n) < 0)
        return bad(cmd, "invalid size: '%s'", v);
    json_object_object_add(hc, key, json_object_new_int64(n));
    return 0;
}

static int set_restart(const char *cmd, json_object *hc, const char *v)
{
    json_object *rp = json_object_new_object();
    const char *colon = strchr(v, ':');
    _cleanup_free_ char *name = colon ? strndup(v, (size_t)(colon - v)) : strdup(v);
    long max = 0;
    if (name == NULL)
        return 125;
    if (strcmp(name, "no") != 0 && strcmp(name, "always") != 0 &&
        strcmp(name, "unless-stopped") != 0 && strcmp(name, "on-failure") != 0) {
        json_object_put(rp);
        return bad(cmd, "invalid restart policy '%s'", v);
    }
    if (colon) {
        char *end;
        max = strtol(colon + 1, &end, 10);
        if (*end || max < 0 || strcmp(name, "on-failure") != 0) {
            json_object_put(rp);
            return bad(cmd, "invalid restart policy '%s'", v);
        }
    }
    json_object_object_add(rp, "Name", json_object_new_string(name));
    json_object_object_add(rp, "MaximumRetryCount", json_object_new_int64(max));
    json_object_object_add(hc, "RestartPolicy", rp);
    return 0;
}

static int add_ulimit(const char *cmd, json_object *hc, const char *v)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq == v)
        return bad(cmd, "invalid ulimit argument: %s", v);
    char *end;
    long long soft = strtoll(eq + 1, &end, 10), hard = soft;
    if (*end == ':')
        hard = strtoll(end + 1, &end, 10);
    if (*end || soft > hard)
        return bad(cmd, "invalid ulimit argument: %s", v);
    json_object *u = json_object_new_object();
    json_object_object_add(u, "Name", json_object_new_string_len(v, (int)(eq - v)));
    json_object_object_add(u, "Soft", json_object_new_int64(soft));
    json_object_object_add(u, "Hard", json_object_new_int64(hard));
    json_object_array_add(obj_child(hc, "Ulimits", json_type_array), u);
    return 0;
}

static void add_device(json_object *hc, const char *v)
{
    _cleanup_free_ char *copy = strdup(v);
    if (copy == NULL)
        return;
    char *parts[3] = {copy, NULL, NULL};
    for (int i = 1; i < 3; i++) {
        char *c = parts[i - 1] ? strchr(parts[i - 1], ':') : NULL;
        if (c) {
            *c = '\0';
            parts[i] = c + 1;
        }
    }
    /* "/dev/x:rwm" has permissions, not a path, in second place. */
    if (parts[1] && parts[1][0] != '/' && parts[2] == NULL) {
        parts[2] = parts[1];
        parts[1] = NULL;
    }
    json_object *d = json_object_new_object();
    json_object_object_add(d, "PathOnHost", json_object_new_string(parts[0]));
    json_object_object_add(d, "PathInContainer",
                           json_object_new_string(parts[1] ? parts[1] : parts[0]));
    json_object_object_add(d, "CgroupPermissions",
                           json_object_new_string(parts[2] ? parts[2] : "rwm"));
    json_object_array_add(obj_child(hc, "Devices", json_type_array), d);
}

static int add_security_opt(const char *cmd, json_object *hc, const char *v)
{
    if (strncmp(v, "seccomp=", 8) == 0 && strcmp(v + 8, "unconfined") != 0) {
        /* As Docker's client: the profile's content travels in the option. */
        _cleanup_free_ char *buf = NULL;
        struct ks_error *e = NULL;
        json_object *prof = NULL;
        if (ks_read_file(v + 8, &buf, NULL, &e) < 0 ||
            ks_json_parse(buf, strlen(buf), &prof, &e) < 0) {
            fprintf(stderr, "kiste %s: opening seccomp profile (%s) failed: %s\n", cmd, v + 8,
                    e->msg);
            ks_error_free(e);
            return 125;
        }
        _cleanup_free_ char *opt = NULL;
        int r = asprintf(&opt, "seccomp=%s", ks_json_plain(prof));
        json_object_put(prof);
        if (r < 0)
            return 125;
        push(hc, "SecurityOpt", opt);
        return 0;
    }
    push(hc, "SecurityOpt", v);
    return 0;
}

static int add_log_opt(const char *cmd, json_object *hc, const char *v)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL)
        return bad(cmd, "invalid log opt '%s'", v);
    _cleanup_free_ char *k = strndup(v, (size_t)(eq - v));
    if (strcmp(k, "max-size") != 0 && strcmp(k, "max-file") != 0 && strcmp(k, "compress") != 0 &&
        strcmp(k, "labels") != 0 && strcmp(k, "env") != 0 && strcmp(k, "tag") != 0)
        return bad(cmd, "unknown log opt '%s' for json-file log driver", k);
    int64_t size;
    if (strcmp(k, "max-size") == 0 && ks_parse_size(eq + 1, &size) < 0)
        return bad(cmd, "invalid max-size '%s'", eq + 1);
    json_object *lc = obj_child(hc, "LogConfig", json_type_object);
    json_object_object_add(obj_child(lc, "Config", json_type_object), k,
                           json_object_new_string(eq + 1));
    return 0;
}

static int add_tmpfs(const char *cmd, json_object *hc, const char *v)
{
    const char *colon = strchr(v, ':');
    _cleanup_free_ char *dest = colon ? strndup(v, (size_t)(colon - v)) : strdup(v);
    if (dest == NULL || dest[0] != '/')
        return bad(cmd, "invalid tmpfs '%s': the path must be absolute", v);
    json_object_object_add(obj_child(hc, "Tmpfs", json_type_object), dest,
                           json_object_new_string(colon ? colon + 1 : ""));
    return 0;
}

/* -v: checked here as the daemon would, stored as Docker's client does (an anonymous volume
 * without a mode in Config.Volumes, the rest in HostConfig.Binds). */
static int add_volume(const char *cmd, json_object *c, json_object *hc, const char *v)
{
    struct ks_mount_spec s;
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_mount_spec_parse_volume(v, &s, &e) < 0)
        return bad(cmd, "%s", e->msg);
    bool anon = s.source == NULL && *s.mode == '\0';
    if (anon)
        json_object_object_add(obj_child(c, "Volumes", json_type_object), s.target,
                               json_object_new_object());
    else
        push(hc, "Binds", v);
    ks_mount_spec_clear(&s);
    return 0;
}

static int add_mount(const char *cmd, json_object *hc, const char *v)
{
    struct ks_mount_spec s;
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_mount_spec_parse_mount(v, &s, &e) < 0)
        return bad(cmd, "invalid argument for \"--mount\" flag: %s", e->msg);
    json_object_array_add(obj_child(hc, "Mounts", json_type_array), ks_mount_spec_to_json(&s));
    ks_mount_spec_clear(&s);
    return 0;
}

static int check_platform(const char *cmd, const char *v)
{
    struct utsname u;
    uname(&u);
    const char *arch = strcmp(u.machine, "x86_64") == 0    ? "amd64"
                       : strcmp(u.machine, "aarch64") == 0 ? "arm64"
                                                           : u.machine;
    char want[128];
    snprintf(want, sizeof(want), "linux/%s", arch);
    if (strcmp(v, "linux") == 0 || strcmp(v, want) == 0 ||
        (strcmp(arch, "amd64") == 0 && strcmp(v, "linux/x86_64") == 0))
        return 0;
    return bad(cmd,
               "image platform `%s` does not match the host (only the host's platform can run)", v);
}

static int set_health_duration(const char *cmd, json_object *c, const char *key, const char *v)
{
    int64_t ns;
    if (parse_duration(v, &ns) < 0)
        return bad(cmd, "invalid duration: '%s'", v);
    json_object_object_add(obj_child(c, "Healthcheck", json_type_object), key,
                           json_object_new_int64(ns));
    return 0;
}

static int parse_int_flag(const char *cmd, const char *v, long long min, long long max,
                          long long *ret)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max)
        return bad(cmd, "invalid number: '%s'", v);
    *ret = n;
    return 0;
}

/* The flags come in groups, each handled by one function. */
#define NOT_MINE (-1)

/* Flags of the Config: the process, its environment, health and stop; NOT_MINE for a flag of
 * another group. */
static int apply_config(const char *cmd, int opt, const char *v, struct ks_run_opts *o,
                        json_object *c, json_object *hc)
{
    long long n;
    int r = 0;
    switch (opt) {
    case 'd':
        o->detach = true;
        break;
    case 'i':
        o->interactive = true;
        break;
    case 't':
        o->tty = true;
        break;
    case OPT_RM:
        o->rm = true;
        break;
    case OPT_NAME:
        o->name = v;
        break;
    case 'h':
        json_object_object_add(c, "Hostname", json_object_new_string(v));
        break;
    case OPT_DOMAINNAME:
        json_object_object_add(c, "Domainname", json_object_new_string(v));
        break;
    case 'e':
        add_env(c, v);
        break;
    case OPT_ENV_FILE:
        return read_lines(cmd, v, c, add_env);
    case 'w':
        if (v[0] != '/')
            return bad(cmd,
                       "the working directory '%s' is invalid, it needs to be an absolute path", v);
        json_object_object_add(c, "WorkingDir", json_object_new_string(v));
        break;
    case 'u':
        json_object_object_add(c, "User", json_object_new_string(v));
        break;
    case OPT_ENTRYPOINT: {
        json_object *ep = json_object_new_array();
        json_object_array_add(ep, json_object_new_string(v));
        json_object_object_add(c, "Entrypoint", ep);
        break;
    }
    case 'l':
        add_label(c, v);
        break;
    case OPT_LABEL_FILE:
        return read_lines(cmd, v, c, add_label);
    case OPT_STOP_SIGNAL: {
        int sig;
        if (ks_signal_parse(v, &sig) < 0)
            return bad(cmd, "invalid signal: %s", v);
        json_object_object_add(c, "StopSignal", json_object_new_string(v));
        break;
    }
    case OPT_STOP_TIMEOUT:
        if ((r = parse_int_flag(cmd, v, -1, 1000000, &n)))
            return r;
        json_object_object_add(c, "StopTimeout", json_object_new_int64(n));
        break;
    default:
        return NOT_MINE;
    }
    return 0;
}

/* The --health-* flags and --no-healthcheck; NOT_MINE for the others. */
static int apply_health(const char *cmd, int opt, const char *v, struct ks_run_opts *o,
                        json_object *c, json_object *hc)
{
    long long n;
    int r = 0;
    switch (opt) {
    case OPT_HEALTH_CMD: {
        json_object *t = json_object_new_array();
        json_object_array_add(t, json_object_new_string("CMD-SHELL"));
        json_object_array_add(t, json_object_new_string(v));
        json_object_object_add(obj_child(c, "Healthcheck", json_type_object), "Test", t);
        break;
    }
    case OPT_HEALTH_INTERVAL:
        return set_health_duration(cmd, c, "Interval", v);
    case OPT_HEALTH_TIMEOUT:
        return set_health_duration(cmd, c, "Timeout", v);
    case OPT_HEALTH_START_PERIOD:
        return set_health_duration(cmd, c, "StartPeriod", v);
    case OPT_HEALTH_RETRIES:
        if ((r = parse_int_flag(cmd, v, 0, 1000000, &n)))
            return r;
        json_object_object_add(obj_child(c, "Healthcheck", json_type_object), "Retries",
                               json_object_new_int64(n));
        break;
    case OPT_NO_HEALTHCHECK: {
        json_object *t = json_object_new_array();
        json_object_array_add(t, json_object_new_string("NONE"));
        json_object *h = json_object_new_object();
        json_object_object_add(h, "Test", t);
        json_object_object_add(c, "Healthcheck", h);
        break;
    }
    default:
        return NOT_MINE;
    }
    return 0;
}

/* Flags of the HostConfig: restart, logging, security and resources; NOT_MINE for a flag of another
 * group. */
static int apply_host(const char *cmd, int opt, const char *v, struct ks_run_opts *o,
                      json_object *c, json_object *hc)
{
    long long n;
    int r = 0;
    switch (opt) {
    case OPT_RESTART:
        return set_restart(cmd, hc, v);
    case OPT_LOG_DRIVER:
        if (strcmp(v, "json-file") != 0 && strcmp(v, "none") != 0)
            return bad(cmd, "logging driver '%s' is not supported (json-file, none)", v);
        json_object_object_add(obj_child(hc, "LogConfig", json_type_object), "Type",
                               json_object_new_string(v));
        break;
    case OPT_LOG_OPT:
        return add_log_opt(cmd, hc, v);
    case OPT_CAP_ADD:
        push(hc, "CapAdd", v);
        break;
    case OPT_CAP_DROP:
        push(hc, "CapDrop", v);
        break;
    case OPT_PRIVILEGED:
        json_object_object_add(hc, "Privileged", json_object_new_boolean(1));
        break;
    case OPT_READ_ONLY:
        json_object_object_add(hc, "ReadonlyRootfs", json_object_new_boolean(1));
        break;
    case OPT_GROUP_ADD:
        push(hc, "GroupAdd", v);
        break;
    case OPT_SECURITY_OPT:
        return add_security_opt(cmd, hc, v);
    case OPT_TMPFS:
        return add_tmpfs(cmd, hc, v);
    case 'v':
        return add_volume(cmd, c, hc, v);
    case OPT_MOUNT:
        return add_mount(cmd, hc, v);
    case OPT_VOLUMES_FROM:
        push(hc, "VolumesFrom", v);
        break;
    case 'm':
        return set_size(cmd, hc, "Memory", v);
    case OPT_MEMORY_SWAP:
        return set_size(cmd, hc, "MemorySwap", v);
    case OPT_MEMORY_RESERVATION:
        return set_size(cmd, hc, "MemoryReservation", v);
    case OPT_SHM_SIZE:
        return set_size(cmd, hc, "ShmSize", v);
    case OPT_CPUS: {
        char *end;
        double cpus = strtod(v, &end);
        if (*end || end == v || cpus < 0 || cpus > 1e6)
            return bad(cmd, "invalid value for --cpus: '%s'", v);
        json_object_object_add(hc, "NanoCpus", json_object_new_int64((int64_t)(cpus * 1e9 + 0.5)));
        break;
    }
    case 'c':
        if ((r = parse_int_flag(cmd, v, 0, 262144, &n)))
            return r;
        json_object_object_add(hc, "CpuShares", json_object_new_int64(n));
        break;
    case OPT_CPUSET_CPUS:
        json_object_object_add(hc, "CpusetCpus", json_object_new_string(v));
        break;
    case OPT_PIDS_LIMIT:
        if ((r = parse_int_flag(cmd, v, -1, INT64_MAX, &n)))
            return r;
        json_object_object_add(hc, "PidsLimit", json_object_new_int64(n));
        break;
    case OPT_ULIMIT:
        return add_ulimit(cmd, hc, v);
    case OPT_DEVICE:
        add_device(hc, v);
        break;
    case OPT_OOM_SCORE_ADJ:
        if ((r = parse_int_flag(cmd, v, -1000, 1000, &n)))
            return r;
        json_object_object_add(hc, "OomScoreAdj", json_object_new_int64(n));
        break;
    case OPT_INIT:
        json_object_object_add(hc, "Init", json_object_new_boolean(1));
        break;
    default:
        return NOT_MINE;
    }
    return 0;
}

/* Flags of the client itself: pulling, attaching, platform, network; NOT_MINE for a flag of another
 * group. */
static int apply_client(const char *cmd, int opt, const char *v, struct ks_run_opts *o,
                        json_object *c, json_object *hc)
{
    switch (opt) {
    case OPT_PULL:
        if (strcmp(v, "never") != 0 && strcmp(v, "missing") != 0 && strcmp(v, "always") != 0)
            return bad(cmd,
                       "invalid pull option: '%s': must be one of \"always\", \"missing\" "
                       "or \"never\"",
                       v);
        o->pull = v;
        break;
    case OPT_SIG_PROXY:
        o->sig_proxy = v == NULL || strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
        o->sig_proxy_set = true;
        break;
    case OPT_DETACH_KEYS: {
        char keys[64];
        size_t len = sizeof(keys);
        struct ks_error *e = NULL;
        if (ks_cli_parse_detach_keys(v, keys, &len, &e) < 0) {
            fprintf(stderr, "kiste %s: %s\n", cmd, e ? e->msg : "invalid detach keys");
            ks_error_free(e);
            return 125;
        }
        o->detach_keys = v;
        break;
    }
    case OPT_PLATFORM:
        o->platform = v;
        return check_platform(cmd, v);
    case OPT_NETWORK:
        json_object_object_add(hc, "NetworkMode", json_object_new_string(v));
        break;
    default:
        return NOT_MINE;
    }
    return 0;
}

/* Docker's domain rule for --dns-search: labels of letters, digits and inner '-', at least one
 * letter, an optional final dot (dropped), shorter than 255; "." alone means no search. */
static bool dns_search_valid(const char *v, char *out, size_t len)
{
    size_t n = strlen(v);
    if (strcmp(v, ".") == 0) {
        snprintf(out, len, ".");
        return true;
    }
    if (n > 0 && v[n - 1] == '.')
        n--;
    if (n == 0 || n >= 255 || n >= len)
        return false;
    bool letter = false;
    for (size_t i = 0; i <= n; i += 1) {
        size_t l = 0;
        while (i + l < n && v[i + l] != '.') {
            if (!isalnum((unsigned char)v[i + l]) && v[i + l] != '-')
                return false;
            letter |= isalpha((unsigned char)v[i + l]) != 0;
            l++;
        }
        if (l == 0 || v[i] == '-' || v[i + l - 1] == '-')
            return false;
        i += l;
    }
    memcpy(out, v, n);
    out[n] = '\0';
    return letter;
}

/* --dns, --dns-search, --dns-option, --add-host and --link, as Docker's client checks and
 * stores them; NOT_MINE for the others. */
static int apply_dns(const char *cmd, int opt, const char *v, struct ks_run_opts *o, json_object *c,
                     json_object *hc)
{
    char msg[600], buf[256];
    const char *flag = opt == OPT_DNS          ? "--dns"
                       : opt == OPT_DNS_SEARCH ? "--dns-search"
                       : opt == OPT_DNS_OPTION ? "--dns-option"
                       : opt == OPT_ADD_HOST   ? "--add-host"
                                               : "--link";
    switch (opt) {
    case OPT_DNS:
        if (ks_dns_server_parse(v, NULL, NULL) < 0) {
            snprintf(msg, sizeof(msg),
                     "invalid argument \"%s\" for \"%s\" flag: %s is not an ip address", v, flag,
                     v);
            return bad(cmd, "%s", msg);
        }
        push(hc, "Dns", v);
        break;
    case OPT_DNS_SEARCH:
        if (!dns_search_valid(v, buf, sizeof(buf))) {
            snprintf(msg, sizeof(msg),
                     "invalid argument \"%s\" for \"%s\" flag: %s is not a valid domain", v, flag,
                     v);
            return bad(cmd, "%s", msg);
        }
        push(hc, "DnsSearch", buf);
        break;
    case OPT_DNS_OPTION:
        if (*v == '\0' || strpbrk(v, " \t\n\r")) {
            snprintf(msg, sizeof(msg),
                     "invalid argument \"%s\" for \"%s\" flag: not a resolver option", v, flag);
            return bad(cmd, "%s", msg);
        }
        push(hc, "DnsOptions", v);
        break;
    case OPT_ADD_HOST: {
        const char *colon = strchr(v, ':');
        if (colon == NULL || colon == v || strpbrk(v, " \t\n\r")) {
            snprintf(msg, sizeof(msg),
                     "invalid argument \"%s\" for \"%s\" flag: bad format for add-host: \"%s\"", v,
                     flag, v);
            return bad(cmd, "%s", msg);
        }
        unsigned char addr[16];
        if (strcmp(colon + 1, "host-gateway") != 0 && inet_pton(AF_INET, colon + 1, addr) != 1 &&
            inet_pton(AF_INET6, colon + 1, addr) != 1) {
            snprintf(
                msg, sizeof(msg),
                "invalid argument \"%s\" for \"%s\" flag: invalid IP address in add-host: \"%s\"",
                v, flag, colon + 1);
            return bad(cmd, "%s", msg);
        }
        push(hc, "ExtraHosts", v);
        break;
    }
    case OPT_LINK: {
        const char *name = v[0] == '/' ? v + 1 : v;
        const char *colon = strchr(name, ':');
        _cleanup_free_ char *n = colon ? strndup(name, (size_t)(colon - name)) : strdup(name);
        const char *alias = colon ? colon + 1 : n;
        if (n == NULL || (colon && strchr(colon + 1, ':')) || !ks_container_name_valid(n) ||
            (*alias && (alias[0] == '/' || !ks_container_name_valid(alias)))) {
            snprintf(msg, sizeof(msg),
                     "invalid argument \"%s\" for \"%s\" flag: bad format for links: %s", v, flag,
                     v);
            return bad(cmd, "%s", msg);
        }
        snprintf(msg, sizeof(msg), "%s:%s", n, *alias ? alias : n);
        push(hc, "Links", msg);
        break;
    }
    default:
        return NOT_MINE;
    }
    return 0;
}

/* The endpoint settings of the container's network, under a key that finish_network() renames
 * to the network once every flag is read (--ip may come before --network). */
#define PENDING_EP "\x01"

static json_object *pending_endpoint(json_object *config)
{
    json_object *nc = obj_child(config, "NetworkingConfig", json_type_object);
    json_object *ec = obj_child(nc, "EndpointsConfig", json_type_object);
    return obj_child(ec, PENDING_EP, json_type_object);
}

/* -p, -P, --expose, --ip, --ip6, --mac-address and --network-alias; NOT_MINE for the others. */
static int apply_net(const char *cmd, int opt, const char *v, struct ks_run_opts *o, json_object *c,
                     json_object *hc)
{
    _cleanup_error_ struct ks_error *e = NULL;
    unsigned char mac[6], a6[16];
    uint32_t a4;
    switch (opt) {
    case 'p':
        if (ks_net_port_spec_add(c, hc, v, &e) < 0)
            return bad(cmd, "%s", e->msg);
        break;
    case 'P':
        json_object_object_add(hc, "PublishAllPorts", json_object_new_boolean(true));
        break;
    case OPT_EXPOSE:
        if (ks_net_expose_add(c, v, &e) < 0)
            return bad(cmd, "%s", e->msg);
        break;
    case OPT_IP:
    case OPT_IP6: {
        bool v6 = opt == OPT_IP6;
        if (v6 ? inet_pton(AF_INET6, v, a6) != 1 : ks_net_ip4_parse(v, &a4) < 0)
            return bad(cmd, "invalid IP address: %s", v);
        json_object *ipam = obj_child(pending_endpoint(o->config), "IPAMConfig", json_type_object);
        json_object_object_add(ipam, v6 ? "IPv6Address" : "IPv4Address", json_object_new_string(v));
        break;
    }
    case OPT_MAC_ADDRESS:
        if (!ks_net_mac_parse(v, mac))
            return bad(cmd, "%s is not a valid mac address", v);
        json_object_object_add(c, "MacAddress", json_object_new_string(v));
        json_object_object_add(pending_endpoint(o->config), "MacAddress",
                               json_object_new_string(v));
        break;
    case OPT_NETWORK_ALIAS:
        json_object_array_add(obj_child(pending_endpoint(o->config), "Aliases", json_type_array),
                              json_object_new_string(v));
        break;
    default:
        return NOT_MINE;
    }
    return 0;
}

/* --pid, --ipc, --uts, --cgroupns, --userns, --sysctl and --cgroup-parent, checked as Docker's
 * client checks them (the combinations are checked once every flag is read); NOT_MINE for the
 * others. */
static int apply_isolation(const char *cmd, int opt, const char *v, struct ks_run_opts *o,
                           json_object *c, json_object *hc)
{
    static const char *const keys[] = {
        [OPT_PID - OPT_PID] = "PidMode",
        [OPT_IPC - OPT_PID] = "IpcMode",
        [OPT_UTS - OPT_PID] = "UTSMode",
        [OPT_CGROUPNS - OPT_PID] = "CgroupnsMode",
        [OPT_USERNS - OPT_PID] = "UsernsMode",
        [OPT_SYSCTL - OPT_PID] = "Sysctls",
        [OPT_CGROUP_PARENT - OPT_PID] = "CgroupParent",
    };
    if (opt < OPT_PID || opt > OPT_CGROUP_PARENT)
        return NOT_MINE;
    _cleanup_json_ json_object *probe = json_object_new_object();
    _cleanup_error_ struct ks_error *e = NULL;
    const char *key = keys[opt - OPT_PID];
    if (opt == OPT_SYSCTL) {
        const char *eq = strchr(v, '=');
        _cleanup_free_ char *k = eq ? strndup(v, (size_t)(eq - v)) : NULL;
        if (k == NULL || !ks_sysctl_namespaced(k))
            return bad(cmd,
                       "invalid argument for \"--sysctl\" flag: sysctl '%s' is not whitelisted", v);
        json_object_object_add(obj_child(hc, key, json_type_object), k,
                               json_object_new_string(eq + 1));
        return 0;
    }
    /* Each value alone, so that the message names the flag that is wrong. */
    json_object *phc = json_object_new_object();
    json_object_object_add(probe, "HostConfig", phc);
    json_object_object_add(phc, key, json_object_new_string(v));
    if (ks_isolation_validate(probe, &e) < 0)
        return bad(cmd, "%s", e->msg);
    json_object_object_add(hc, key, json_object_new_string(v));
    return 0;
}

/* Files the pending endpoint settings under the network they are for, as Docker's client. */
static void finish_network(json_object *config)
{
    json_object *ec = ks_json_get(ks_json_get(config, "NetworkingConfig"), "EndpointsConfig");
    json_object *ep = ks_json_get(ec, PENDING_EP);
    if (ep == NULL)
        return;
    const char *mode = ks_json_str(ks_json_get(config, "HostConfig"), "NetworkMode");
    if (mode == NULL || strcmp(mode, "default") == 0)
        mode = "bridge";
    json_object_object_add(ec, mode, json_object_get(ep));
    json_object_object_del(ec, PENDING_EP);
}

/* One flag; 0 or an exit status. */
static int apply(const char *cmd, int opt, const char *v, struct ks_run_opts *o, json_object *c,
                 json_object *hc)
{
    int (*const groups[])(const char *, int, const char *, struct ks_run_opts *, json_object *,
                          json_object *) = {apply_config,   apply_health, apply_host,
                                            apply_client,   apply_dns,    apply_net,
                                            apply_isolation};
    for (size_t i = 0; i < KS_ELEMENTSOF(groups); i++) {
        int r = groups[i](cmd, opt, v, o, c, hc);
        if (r != NOT_MINE)
            return r;
    }
    return 125;
}

static void usage(const char *cmd)
{
    printf("Usage: kiste %s [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
           "Options: -d -i -t --rm --name -h -e --env-file -w -u --group-add --entrypoint -l\n"
           "  --label-file --restart --log-driver --log-opt --cap-add --cap-drop --privileged\n"
           "  --read-only --security-opt --tmpfs -m --memory-swap --memory-reservation --cpus -c\n"
           "  --cpuset-cpus --pids-limit --ulimit --device --oom-score-adj --init --health-*\n"
           "  --no-healthcheck --stop-signal --stop-timeout --pull --sig-proxy --detach-keys\n"
           "  --platform --network --shm-size -v --mount --volumes-from\n"
           "  --dns --dns-search --dns-option --add-host --link\n"
           "  -p -P --expose --ip --ip6 --mac-address --network-alias\n"
           "  --pid --ipc --uts --cgroupns --userns --sysctl --cgroup-parent\n",
           cmd);
}

static void defaults(struct ks_run_opts *o, json_object *c, json_object *hc)
{
    json_object_object_add(c, "Tty", json_object_new_boolean(o->tty));
    json_object_object_add(c, "OpenStdin", json_object_new_boolean(o->interactive));
    /* A foreground run closes the container's stdin when the client's closes, as Docker's
     * client asks with StdinOnce. */
    json_object_object_add(c, "StdinOnce", json_object_new_boolean(o->interactive && !o->detach));
    json_object_object_add(c, "AttachStdin", json_object_new_boolean(o->interactive && !o->detach));
    json_object_object_add(c, "AttachStdout", json_object_new_boolean(!o->detach));
    json_object_object_add(c, "AttachStderr", json_object_new_boolean(!o->detach));
    json_object_object_add(hc, "AutoRemove", json_object_new_boolean(o->rm));
    if (ks_json_get(hc, "RestartPolicy") == NULL) {
        json_object *rp = json_object_new_object();
        json_object_object_add(rp, "Name", json_object_new_string("no"));
        json_object_object_add(rp, "MaximumRetryCount", json_object_new_int64(0));
        json_object_object_add(hc, "RestartPolicy", rp);
    }
    json_object *lc = obj_child(hc, "LogConfig", json_type_object);
    if (ks_json_get(lc, "Type") == NULL)
        json_object_object_add(lc, "Type", json_object_new_string("json-file"));
    obj_child(lc, "Config", json_type_object);
    if (ks_json_get(hc, "NetworkMode") == NULL)
        json_object_object_add(hc, "NetworkMode", json_object_new_string("default"));
    for (const char *const *k = (const char *const[]){"Privileged", "ReadonlyRootfs", "Init", NULL};
         *k; k++)
        if (ks_json_get(hc, *k) == NULL)
            json_object_object_add(hc, *k, json_object_new_boolean(0));
    if (!o->sig_proxy_set)
        o->sig_proxy = true;
}

int ks_cli_parse_run_opts(const char *cmd, int argc, char **argv, struct ks_run_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->config = json_object_new_object();
    json_object *c = json_object_new_object(), *hc = json_object_new_object();
    json_object_object_add(o->config, "Config", c);
    json_object_object_add(o->config, "HostConfig", hc);
    int opt;
    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "+dith:e:w:u:l:m:c:v:p:P", run_options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(cmd);
            return -1;
        }
        if (opt == '?') {
            fprintf(stderr, "See 'kiste %s --help'.\n", cmd);
            return 125;
        }
        int r = apply(cmd, opt, optarg, o, c, hc);
        if (r != 0)
            return r;
    }
    if (optind >= argc)
        return bad(cmd, "%s", "requires at least 1 argument");
    o->image = argv[optind++];
    o->args = argv + optind;
    if (argc > optind) {
        json_object *cmdv = json_object_new_array();
        for (int i = optind; i < argc; i++)
            json_object_array_add(cmdv, json_object_new_string(argv[i]));
        json_object_object_add(c, "Cmd", cmdv);
    }
    if (strcmp(cmd, "create") == 0)
        o->detach = true;
    defaults(o, c, hc);
    finish_network(o->config);
    _cleanup_error_ struct ks_error *iso_err = NULL;
    if (ks_isolation_defaults(o->config, &iso_err) < 0)
        return bad(cmd, "%s", iso_err->msg);
    const char *policy = ks_json_str(ks_json_get(hc, "RestartPolicy"), "Name");
    if (o->rm && policy && strcmp(policy, "no") != 0)
        return bad(cmd, "%s", "Conflicting options: --restart and --rm");
    return 0;
}

void ks_run_opts_free(struct ks_run_opts *o)
{
    if (o->config)
        json_object_put(o->config);
    o->config = NULL;
}
