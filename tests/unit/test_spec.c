/* Tests of config.json loading and validation, the default spec and the features document. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "oci/spec.h"
#include "tap.h"

static const char minimal[] = "{\"ociVersion\": \"1.0.0\","
                              " \"root\": {\"path\": \"rootfs\"},"
                              " \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"},"
                              " \"linux\": {\"namespaces\": [{\"type\": \"pid\"},"
                              "                             {\"type\": \"mount\"}]}}";

/* Most fields of the spec at once, all valid. */
static const char rich[] =
    "{\"ociVersion\": \"1.3.0\","
    " \"root\": {\"path\": \"/var/lib/rootfs\", \"readonly\": false},"
    " \"hostname\": \"h\", \"domainname\": \"d\","
    " \"mounts\": [{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
    "   {\"destination\": \"data\", \"type\": \"none\", \"source\": \"/srv\","
    "    \"options\": [\"rbind\", \"idmap\"],"
    "    \"uidMappings\": [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}],"
    "    \"gidMappings\": [{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}]}],"
    " \"process\": {\"terminal\": false, \"consoleSize\": {\"height\": 25, \"width\": 80},"
    "   \"user\": {\"uid\": 1000, \"gid\": 1000, \"umask\": 18, \"additionalGids\": [5, 6]},"
    "   \"args\": [\"/bin/sh\", \"-c\", \"true\"], \"env\": [\"A=1\", \"B=\"],"
    "   \"cwd\": \"/home\", \"commandLine\": \"x\","
    "   \"capabilities\": {\"bounding\": [\"CAP_KILL\"], \"effective\": [], \"inheritable\": [],"
    "                    \"permitted\": [\"CAP_KILL\"], \"ambient\": []},"
    "   \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 18446744073709551615,"
    "                \"soft\": 1024}],"
    "   \"noNewPrivileges\": true, \"apparmorProfile\": \"p\", \"oomScoreAdj\": -1000,"
    "   \"scheduler\": {\"policy\": \"SCHED_DEADLINE\", \"nice\": -5, \"priority\": 0,"
    "                 \"flags\": [\"SCHED_FLAG_RESET_ON_FORK\"], \"runtime\": 1,"
    "                 \"deadline\": 2, \"period\": 3},"
    "   \"selinuxLabel\": \"l\", \"ioPriority\": {\"class\": \"IOPRIO_CLASS_BE\", \"priority\": 7},"
    "   \"execCPUAffinity\": {\"initial\": \"0\", \"final\": \"0-3\"}},"
    " \"hooks\": {\"prestart\": [{\"path\": \"/bin/true\", \"args\": [\"true\"],"
    "                            \"env\": [\"X=y\"], \"timeout\": 5}],"
    "   \"createRuntime\": [], \"createContainer\": [], \"startContainer\": [],"
    "   \"poststart\": [], \"poststop\": [{\"path\": \"/bin/false\"}]},"
    " \"annotations\": {\"org.example\": \"v\"},"
    " \"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}],"
    "   \"gidMappings\": [{\"containerID\": 0, \"hostID\": 4294967295, \"size\": 1}],"
    "   \"sysctl\": {\"net.ipv4.ip_forward\": \"1\"},"
    "   \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"},"
    "       {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rw\"}],"
    "     \"memory\": {\"limit\": -1, \"reservation\": 1, \"swap\": 2, \"kernel\": 3,"
    "       \"kernelTCP\": 4, \"swappiness\": 60, \"disableOOMKiller\": false,"
    "       \"useHierarchy\": true, \"checkBeforeUpdate\": true},"
    "     \"cpu\": {\"shares\": 1024, \"quota\": -1, \"burst\": 0, \"period\": 100000,"
    "       \"realtimeRuntime\": 0, \"realtimePeriod\": 0, \"cpus\": \"0-1\", \"mems\": \"0\","
    "       \"idle\": 1},"
    "     \"pids\": {\"limit\": 100},"
    "     \"blockIO\": {\"weight\": 500, \"leafWeight\": 100,"
    "       \"weightDevice\": [{\"major\": 8, \"minor\": 0, \"weight\": 10}],"
    "       \"throttleReadBpsDevice\": [{\"major\": 8, \"minor\": 0, \"rate\": 1000}],"
    "       \"throttleWriteBpsDevice\": [], \"throttleReadIOPSDevice\": [],"
    "       \"throttleWriteIOPSDevice\": []},"
    "     \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 0}],"
    "     \"network\": {\"classID\": 1, \"priorities\": [{\"name\": \"eth0\", \"priority\": 1}]},"
    "     \"rdma\": {\"mlx5_1\": {\"hcaHandles\": 3, \"hcaObjects\": 10000}},"
    "     \"unified\": {\"memory.high\": \"max\"}},"
    "   \"cgroupsPath\": \"/a/b\","
    "   \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\", \"path\": \"/run/n\"},"
    "     {\"type\": \"mount\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, {\"type\": \"user\"},"
    "     {\"type\": \"cgroup\"}, {\"type\": \"time\"}],"
    "   \"devices\": [{\"type\": \"c\", \"path\": \"/dev/fuse\", \"major\": 10, \"minor\": 229,"
    "                \"fileMode\": 438, \"uid\": 0, \"gid\": 0}],"
    "   \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1,"
    "     \"architectures\": [\"SCMP_ARCH_X86_64\"], \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"],"
    "     \"listenerPath\": \"/run/l.sock\", \"listenerMetadata\": \"m\","
    "     \"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"errnoRet\": 1,"
    "       \"args\": [{\"index\": 0, \"value\": 1, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]},"
    "   \"rootfsPropagation\": \"rslave\", \"maskedPaths\": [\"/proc/kcore\"],"
    "   \"readonlyPaths\": [\"/proc/sys\"], \"mountLabel\": \"m\","
    "   \"intelRdt\": {\"closID\": \"c\", \"l3CacheSchema\": \"L3:0=f\", \"enableCMT\": true},"
    "   \"personality\": {\"domain\": \"LINUX32\", \"flags\": []},"
    "   \"timeOffsets\": {\"monotonic\": {\"secs\": -10, \"nanosecs\": 5},"
    "                   \"boottime\": {\"secs\": 1}},"
    "   \"memoryPolicy\": {\"mode\": \"MPOL_BIND\", \"nodes\": \"0\","
    "                    \"flags\": [\"MPOL_F_STATIC_NODES\"]},"
    "   \"netDevices\": {\"eth1\": {\"name\": \"eth0\"}}},"
    " \"windows\": {\"layerFolders\": 5}, \"solaris\": 1, \"vm\": \"x\","
    " \"someFutureField\": {\"x\": [1, 2]}}";

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_json_parse(text, strlen(text), &o, &err) < 0) {
        tap_diag("parse: %s", err->msg);
        return NULL;
    }
    return o;
}

/* The minimal config with the top-level members of patch replacing its own; a null member
 * removes the key. */
static json_object *patched(const char *patch)
{
    json_object *base = parse(minimal);
    _cleanup_json_ json_object *p = parse(patch);
    if (base == NULL || p == NULL) {
        json_object_put(base);
        return NULL;
    }
    json_object_object_foreach(p, key, val)
    {
        if (val == NULL)
            json_object_object_del(base, key);
        else
            json_object_object_add(base, key, json_object_get(val));
    }
    return base;
}

static bool validates(json_object *spec, const char *what)
{
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_spec_validate(spec, &err);
    if (!tap_ok(r == 0, "%s validates", what))
        tap_diag("  %s", err ? err->msg : "(no message)");
    return r == 0;
}

static void expect_error(json_object *spec, const char *expected, const char *what)
{
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_spec_validate(spec, &err);
    bool ok = r == -EINVAL && err && strncmp(err->msg, "config.json: ", 13) == 0 &&
              strstr(err->msg, expected) != NULL;
    if (!tap_ok(ok, "%s", what))
        tap_diag("  got %d \"%s\", expected \"%s\"", r, err ? err->msg : "(none)", expected);
}

static const struct {
    const char *patch;
    const char *expected;
} invalid[] = {
    {"{\"ociVersion\": \"2.0.0\"}",
     "config.json: ociVersion: unsupported version `2.0.0` (supported 1.0.0 to 1.3.0)"},
    {"{\"ociVersion\": \"1.4.0\"}", "ociVersion: unsupported version `1.4.0`"},
    {"{\"ociVersion\": \"0.9.0\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": \"1.0\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": \"1.0.0.0\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": \"v1.0.0\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": \"1.0.0-\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": \"1.0.0-a b\"}", "ociVersion: unsupported version"},
    {"{\"ociVersion\": 1}", "config.json: ociVersion: expected a string"},
    {"{\"ociVersion\": null}", "config.json: ociVersion: required but missing"},
    {"{\"root\": null}", "root: required but missing"},
    {"{\"root\": {\"readonly\": true}}", "root.path: required but missing"},
    {"{\"root\": {\"path\": \"\"}}", "root.path: must not be empty"},
    {"{\"root\": {\"path\": \"r\", \"readonly\": \"yes\"}}", "root.readonly: expected a boolean"},
    {"{\"root\": []}", "root: expected an object"},
    {"{\"hostname\": 5}", "hostname: expected a string"},
    {"{\"domainname\": false}", "domainname: expected a string"},
    {"{\"mounts\": {}}", "mounts: expected an array"},
    {"{\"mounts\": [{\"destination\": \"\"}]}", "mounts[0].destination: must not be empty"},
    {"{\"mounts\": [{\"type\": \"tmpfs\"}]}", "mounts[0].destination: required but missing"},
    {"{\"mounts\": [{\"destination\": \"/a\"}, {\"destination\": \"/b\", "
     "\"options\": [\"ro\", 7]}]}",
     "mounts[1].options[1]: expected a string"},
    {"{\"mounts\": [{\"destination\": \"/a\", \"uidMappings\": [{\"containerID\": 0, "
     "\"hostID\": 0}]}]}",
     "mounts[0].uidMappings[0].size: required but missing"},
    {"{\"mounts\": [\"/a\"]}", "mounts[0]: expected an object"},
    {"{\"process\": {\"args\": [\"sh\", 1], \"cwd\": \"/\"}}",
     "config.json: process.args[1]: expected a string"},
    {"{\"process\": {\"args\": [], \"cwd\": \"/\"}}", "process.args: must not be empty"},
    {"{\"process\": {\"cwd\": \"/\"}}", "process.args: required but missing"},
    {"{\"process\": {\"args\": [\"a\\u0000b\"], \"cwd\": \"/\"}}",
     "process.args[0]: contains a NUL byte"},
    {"{\"process\": {\"args\": [\"sh\"]}}", "process.cwd: required but missing"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"home\"}}",
     "process.cwd: must be an absolute path, not `home`"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": [\"A=1\", \"FOO\"]}}",
     "process.env[1]: expected KEY=VALUE, not `FOO`"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": [\"=x\"]}}",
     "process.env[0]: expected KEY=VALUE"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"terminal\": 1}}",
     "process.terminal: expected a boolean"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": -1}}}",
     "process.user.uid: -1 is out of range (0 to 4294967295)"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"gid\": 4294967296}}}",
     "process.user.gid: 4294967296 is out of range"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": 1.5}}}",
     "process.user.uid: expected an integer"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": \"0\"}}}",
     "process.user.uid: expected an integer"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"user\": {\"additionalGids\": [1, \"2\"]}}}",
     "process.user.additionalGids[1]: expected an integer"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"consoleSize\": {\"height\": \"x\"}}}",
     "process.consoleSize.height: expected an integer"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"rlimits\": [{\"type\": \"RLIMIT_FOO\", \"hard\": 1, \"soft\": 1}]}}",
     "process.rlimits[0].type: unknown rlimit type `RLIMIT_FOO`"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"hard\": -1, \"soft\": 1}]}}",
     "process.rlimits[0].hard: -1 is out of range"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"rlimits\": [{\"hard\": 1}]}}",
     "process.rlimits[0].type: required but missing"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"capabilities\": {\"bounding\": \"CAP_KILL\"}}}",
     "process.capabilities.bounding: expected an array"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"capabilities\": {\"ambient\": [null]}}}",
     "process.capabilities.ambient[0]: unexpected null"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"noNewPrivileges\": \"true\"}}",
     "process.noNewPrivileges: expected a boolean"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"oomScoreAdj\": 2000}}",
     "process.oomScoreAdj: 2000 is out of range (-1000 to 1000)"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"scheduler\": {\"policy\": \"SCHED_FOO\"}}}",
     "process.scheduler.policy: unknown scheduler policy `SCHED_FOO`"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"scheduler\": {\"policy\": \"SCHED_OTHER\", \"nice\": 20}}}",
     "process.scheduler.nice: 20 is out of range"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"ioPriority\": {\"class\": \"IOPRIO_CLASS_BE\", \"priority\": 8}}}",
     "process.ioPriority.priority: 8 is out of range (0 to 7)"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
     "\"ioPriority\": {\"class\": \"IOPRIO_CLASS_NONE\"}}}",
     "process.ioPriority.class: unknown I/O priority class"},
    {"{\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"execCPUAffinity\": {\"initial\": 0}}}",
     "process.execCPUAffinity.initial: expected a string"},
    {"{\"hooks\": {\"prestart\": [{\"path\": \"true\"}]}}",
     "hooks.prestart[0].path: must be an absolute path"},
    {"{\"hooks\": {\"poststop\": [{\"path\": \"/bin/true\", \"timeout\": 0}]}}",
     "hooks.poststop[0].timeout: 0 is out of range"},
    {"{\"hooks\": {\"createRuntime\": [{}]}}", "hooks.createRuntime[0].path: required but missing"},
    {"{\"hooks\": {\"startContainer\": [{\"path\": \"/x\", \"env\": [\"NOEQUALS\"]}]}}",
     "hooks.startContainer[0].env[0]: expected KEY=VALUE"},
    {"{\"hooks\": {\"poststart\": {}}}", "hooks.poststart: expected an array"},
    {"{\"annotations\": {\"a\": 1}}", "annotations[\"a\"]: expected a string"},
    {"{\"annotations\": []}", "annotations: expected an object"},
    {"{\"annotations\": {\"\\u001bx\": 1}}", "annotations[\"?x\"]: expected a string"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"mount\"}, "
     "{\"type\": \"foo\"}]}}",
     "config.json: linux.namespaces[2].type: unknown namespace type `foo`"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]}}",
     "linux.namespaces[1].type: duplicate namespace type `pid`"},
    {"{\"linux\": {\"namespaces\": [{\"path\": \"/x\"}]}}",
     "linux.namespaces[0].type: required but missing"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"net\"}]}}",
     "linux.namespaces[0].type: unknown namespace type `net`"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"run/netns\"}]}}",
     "linux.namespaces[0].path: must be an absolute path"},
    {"{\"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}]}}",
     "config.json: linux.uidMappings: set but there is no user namespace"},
    {"{\"linux\": {\"gidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}], "
     "\"namespaces\": [{\"type\": \"pid\"}]}}",
     "linux.gidMappings: set but there is no user namespace"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"user\"}], "
     "\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 0}]}}",
     "linux.uidMappings[0]: size must not be 0"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"user\"}], "
     "\"uidMappings\": [{\"containerID\": 0, \"hostID\": -5, \"size\": 1}]}}",
     "linux.uidMappings[0].hostID: -5 is out of range"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"user\"}], "
     "\"uidMappings\": [{\"containerID\": 4294967295, \"hostID\": 0, \"size\": 2}]}}",
     "linux.uidMappings[0]: range goes past 4294967295"},
    {"{\"linux\": {\"timeOffsets\": {\"monotonic\": {\"secs\": 1}}}}",
     "linux.timeOffsets: set but there is no time namespace"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"time\"}], \"timeOffsets\": {\"realtime\": {}}}}",
     "linux.timeOffsets: unknown key `realtime`"},
    {"{\"linux\": {\"namespaces\": [{\"type\": \"time\"}], "
     "\"timeOffsets\": {\"boottime\": {\"nanosecs\": -1}}}}",
     "linux.timeOffsets.boottime.nanosecs: -1 is out of range"},
    {"{\"linux\": {\"sysctl\": {\"net.x\": true}}}", "linux.sysctl[\"net.x\"]: expected a string"},
    {"{\"linux\": {\"resources\": {\"devices\": [{\"access\": \"rwm\"}]}}}",
     "linux.resources.devices[0].allow: required but missing"},
    {"{\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"type\": \"x\"}]}}}",
     "linux.resources.devices[0].type: unknown device type `x`"},
    {"{\"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"access\": \"rwx\"}]}}}",
     "linux.resources.devices[0].access: invalid access `rwx`"},
    {"{\"linux\": {\"resources\": {\"memory\": {\"limit\": \"1G\"}}}}",
     "linux.resources.memory.limit: expected an integer"},
    {"{\"linux\": {\"resources\": {\"memory\": {\"swappiness\": -1}}}}",
     "linux.resources.memory.swappiness: -1 is out of range"},
    {"{\"linux\": {\"resources\": {\"memory\": {\"disableOOMKiller\": 0}}}}",
     "linux.resources.memory.disableOOMKiller: expected a boolean"},
    {"{\"linux\": {\"resources\": {\"cpu\": {\"cpus\": 1}}}}",
     "linux.resources.cpu.cpus: expected a string"},
    {"{\"linux\": {\"resources\": {\"cpu\": {\"shares\": -2}}}}",
     "linux.resources.cpu.shares: -2 is out of range"},
    {"{\"linux\": {\"resources\": {\"pids\": {\"limit\": 1e3}}}}",
     "linux.resources.pids.limit: expected an integer"},
    {"{\"linux\": {\"resources\": {\"blockIO\": {\"weight\": 70000}}}}",
     "linux.resources.blockIO.weight: 70000 is out of range (0 to 65535)"},
    {"{\"linux\": {\"resources\": {\"blockIO\": {\"throttleWriteIOPSDevice\": "
     "[{\"major\": 8}]}}}}",
     "linux.resources.blockIO.throttleWriteIOPSDevice[0].minor: required but missing"},
    {"{\"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": \"2MB\", "
     "\"limit\": \"x\"}]}}}",
     "linux.resources.hugepageLimits[0].limit: expected an integer"},
    {"{\"linux\": {\"resources\": {\"network\": {\"priorities\": [{\"priority\": 1}]}}}}",
     "linux.resources.network.priorities[0].name: required but missing"},
    {"{\"linux\": {\"resources\": {\"rdma\": {\"mlx\": {\"hcaHandles\": -1}}}}}",
     "linux.resources.rdma[\"mlx\"].hcaHandles: -1 is out of range"},
    {"{\"linux\": {\"resources\": {\"unified\": {\"memory.max\": 5}}}}",
     "linux.resources.unified[\"memory.max\"]: expected a string"},
    {"{\"linux\": {\"cgroupsPath\": []}}", "linux.cgroupsPath: expected a string"},
    {"{\"linux\": {\"devices\": [{\"type\": \"x\", \"path\": \"/dev/x\"}]}}",
     "linux.devices[0].type: unknown device type `x`"},
    {"{\"linux\": {\"devices\": [{\"type\": \"c\", \"path\": \"dev/x\"}]}}",
     "linux.devices[0].path: must be an absolute path"},
    {"{\"linux\": {\"devices\": [{\"type\": \"c\", \"path\": \"/dev/x\", \"uid\": -1}]}}",
     "linux.devices[0].uid: -1 is out of range"},
    {"{\"linux\": {\"seccomp\": {\"syscalls\": []}}}",
     "linux.seccomp.defaultAction: required but missing"},
    {"{\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
     "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, "
     "\"value\": \"1\", \"op\": \"SCMP_CMP_EQ\"}]}]}}}",
     "linux.seccomp.syscalls[0].args[0].value: expected an integer"},
    {"{\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
     "[{\"names\": [], \"action\": \"SCMP_ACT_ERRNO\"}]}}}",
     "linux.seccomp.syscalls[0].names: must not be empty"},
    {"{\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
     "\"architectures\": [1]}}}",
     "linux.seccomp.architectures[0]: expected a string"},
    {"{\"linux\": {\"rootfsPropagation\": \"foo\"}}",
     "linux.rootfsPropagation: unknown rootfs propagation `foo`"},
    {"{\"linux\": {\"maskedPaths\": [null]}}", "linux.maskedPaths[0]: unexpected null"},
    {"{\"linux\": {\"readonlyPaths\": \"/proc\"}}", "linux.readonlyPaths: expected an array"},
    {"{\"linux\": {\"personality\": {\"domain\": \"LINUX64\"}}}",
     "linux.personality.domain: unknown personality domain `LINUX64`"},
    {"{\"linux\": {\"memoryPolicy\": {\"mode\": \"MPOL_FOO\"}}}",
     "linux.memoryPolicy.mode: unknown memory policy mode `MPOL_FOO`"},
    {"{\"linux\": {\"intelRdt\": {\"enableCMT\": \"yes\"}}}",
     "linux.intelRdt.enableCMT: expected a boolean"},
    {"{\"linux\": []}", "linux: expected an object"},
    /* Values from the document are cut short and stripped of control characters. */
    {"{\"linux\": {\"namespaces\": [{\"type\": \"\\u001b[31mred\"}]}}",
     "unknown namespace type `?[31mred`"},
    {"{\"ociVersion\": "
     "\"1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaa b\"}",
     "aaa...` (supported"},
};

static void test_invalid(void)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(invalid); i++) {
        _cleanup_json_ json_object *spec = patched(invalid[i].patch);
        if (spec == NULL) {
            tap_ok(false, "invalid[%zu]: test case parses", i);
            continue;
        }
        expect_error(spec, invalid[i].expected, invalid[i].expected);
    }
}

static void test_valid(void)
{
    _cleanup_json_ json_object *m = parse(minimal);
    validates(m, "minimal config");
    _cleanup_json_ json_object *r = parse(rich);
    validates(r, "config with most fields");

    static const char *const versions[] = {
        "1.0.0", "1.0.1", "1.0.2-dev", "1.0.0-rc5",          "1.1.0",
        "1.2.1", "1.3.0", "1.3.7",     "1.3.0-rc.1+build.5", "1.2.0+dirty",
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(versions); i++) {
        _cleanup_free_ char *patch = NULL;
        if (asprintf(&patch, "{\"ociVersion\": \"%s\"}", versions[i]) < 0)
            abort();
        _cleanup_json_ json_object *spec = patched(patch);
        char what[64];
        snprintf(what, sizeof(what), "ociVersion %s", versions[i]);
        validates(spec, what);
    }

    /* Null members count as absent, as they do for runc. */
    _cleanup_json_ json_object *n = patched("{\"hostname\": null, \"mounts\": null, "
                                            "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", "
                                            "\"user\": null, \"env\": null}}");
    validates(n, "null members");
    /* A user namespace joined by path needs no mappings; a relative mount destination is
     * accepted as runc does. */
    _cleanup_json_ json_object *u = patched(
        "{\"linux\": {\"namespaces\": [{\"type\": \"user\", \"path\": \"/proc/1/ns/user\"}]},"
        " \"mounts\": [{\"destination\": \"tmp\", \"type\": \"tmpfs\"}]}");
    validates(u, "joined user namespace, relative mount destination");
    /* No process at all: `create` of a container to exec into later. */
    _cleanup_json_ json_object *np = patched("{\"process\": null}");
    validates(np, "config without process");
    _cleanup_json_ json_object *e =
        patched("{\"linux\": {\"uidMappings\": [], \"timeOffsets\": {}}}");
    validates(e, "empty mappings and time offsets without namespaces");
}

static void test_not_object(void)
{
    _cleanup_json_ json_object *a = parse("[]");
    expect_error(a, "config.json: expected an object", "top level array rejected");
    expect_error(NULL, "config.json: expected an object", "NULL rejected");
    _cleanup_json_ json_object *big = parse("{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": "
                                            "\"r\"}, \"process\": {\"args\": [\"sh\"], \"cwd\": "
                                            "\"/\", \"user\": {\"uid\": 18446744073709551616}}}");
    if (big)
        expect_error(big, "process.user.uid", "integer above UINT64_MAX rejected");
    else
        tap_ok(true, "integer above UINT64_MAX rejected by the parser");
}

static bool has_string(json_object *a, const char *s)
{
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_object_get_string(json_object_array_get_idx(a, i));
        if (v && strcmp(v, s) == 0)
            return true;
    }
    return false;
}

static json_object *find_mount(json_object *spec, const char *destination)
{
    json_object *mounts = ks_json_get_type(spec, "mounts", json_type_array);
    size_t n = mounts ? json_object_array_length(mounts) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        const char *d = ks_json_str(m, "destination");
        if (d && strcmp(d, destination) == 0)
            return m;
    }
    return NULL;
}

static bool has_namespace(json_object *spec, const char *type)
{
    json_object *ns = ks_json_get_type(ks_json_get(spec, "linux"), "namespaces", json_type_array);
    size_t n = ns ? json_object_array_length(ns) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = ks_json_str(json_object_array_get_idx(ns, i), "type");
        if (t && strcmp(t, type) == 0)
            return true;
    }
    return false;
}

static void test_default(void)
{
    _cleanup_json_ json_object *spec = ks_spec_default(false);
    tap_ok(spec != NULL, "default spec built");
    validates(spec, "default spec");
    json_object *process = ks_json_get(spec, "process");
    TAP_EQ_STR(ks_json_str(spec, "hostname"), "kiste", "default hostname");
    TAP_EQ_STR(ks_json_str(ks_json_get(spec, "root"), "path"), "rootfs", "default root.path");
    tap_ok(ks_json_bool(ks_json_get(spec, "root"), "readonly", false), "root read-only");
    tap_ok(ks_json_bool(process, "terminal", false), "terminal true");
    tap_ok(ks_json_bool(process, "noNewPrivileges", false), "noNewPrivileges true");
    json_object *caps = ks_json_get(process, "capabilities");
    tap_ok(has_string(ks_json_get(caps, "bounding"), "CAP_NET_BIND_SERVICE") &&
               has_string(ks_json_get(caps, "effective"), "CAP_KILL") &&
               has_string(ks_json_get(caps, "permitted"), "CAP_AUDIT_WRITE") &&
               ks_json_get(caps, "inheritable") == NULL,
           "default capabilities");
    json_object *rl = json_object_array_get_idx(ks_json_get(process, "rlimits"), 0);
    tap_ok(rl && strcmp(ks_json_str(rl, "type"), "RLIMIT_NOFILE") == 0 &&
               ks_json_int(rl, "hard", 0) == 1024 && ks_json_int(rl, "soft", 0) == 1024,
           "RLIMIT_NOFILE 1024");
    tap_ok(has_string(ks_json_get(process, "env"), "TERM=xterm"), "TERM=xterm");
    static const char *const ns[] = {"pid", "network", "ipc", "uts", "mount", "cgroup"};
    bool all = true;
    for (size_t i = 0; i < KS_ELEMENTSOF(ns); i++)
        all = all && has_namespace(spec, ns[i]);
    tap_ok(all && !has_namespace(spec, "user"), "default namespaces");
    TAP_EQ_STR(ks_json_str(find_mount(spec, "/sys"), "type"), "sysfs", "/sys is sysfs");
    tap_ok(find_mount(spec, "/sys/fs/cgroup") != NULL, "cgroup mount present");
    tap_ok(has_string(ks_json_get(find_mount(spec, "/dev/pts"), "options"), "gid=5"),
           "devpts with gid=5");
    json_object *linux_obj = ks_json_get(spec, "linux");
    tap_ok(ks_json_get(ks_json_get(linux_obj, "resources"), "devices") != NULL,
           "device cgroup denies all");
    tap_ok(has_string(ks_json_get(linux_obj, "maskedPaths"), "/proc/kcore") &&
               has_string(ks_json_get(linux_obj, "maskedPaths"), "/proc/scsi") &&
               json_object_array_length(ks_json_get(linux_obj, "maskedPaths")) == 10,
           "masked paths");
    tap_ok(has_string(ks_json_get(linux_obj, "readonlyPaths"), "/proc/sysrq-trigger") &&
               json_object_array_length(ks_json_get(linux_obj, "readonlyPaths")) == 5,
           "read-only paths");

    _cleanup_json_ json_object *rl_spec = ks_spec_default(true);
    tap_ok(rl_spec != NULL, "rootless default spec built");
    validates(rl_spec, "rootless default spec");
    tap_ok(has_namespace(rl_spec, "user") && !has_namespace(rl_spec, "network") &&
               has_namespace(rl_spec, "pid"),
           "rootless namespaces");
    json_object *rl_linux = ks_json_get(rl_spec, "linux");
    json_object *um = json_object_array_get_idx(ks_json_get(rl_linux, "uidMappings"), 0);
    json_object *gm = json_object_array_get_idx(ks_json_get(rl_linux, "gidMappings"), 0);
    tap_ok(um && ks_json_int(um, "hostID", -1) == (int64_t)geteuid() &&
               ks_json_int(um, "containerID", -1) == 0 && ks_json_int(um, "size", -1) == 1,
           "uid mapping of the caller");
    tap_ok(gm && ks_json_int(gm, "hostID", -1) == (int64_t)getegid(), "gid mapping of the caller");
    tap_ok(ks_json_get(rl_linux, "resources") == NULL, "rootless: no resources");
    json_object *sys = find_mount(rl_spec, "/sys");
    tap_ok(sys && strcmp(ks_json_str(sys, "type"), "none") == 0 &&
               strcmp(ks_json_str(sys, "source"), "/sys") == 0 &&
               has_string(ks_json_get(sys, "options"), "rbind") &&
               has_string(ks_json_get(sys, "options"), "ro"),
           "rootless: /sys is a read-only rbind");
    tap_ok(find_mount(rl_spec, "/sys/fs/cgroup") == NULL, "rootless: no cgroup mount");
    json_object *pts = find_mount(rl_spec, "/dev/pts");
    tap_ok(pts && !has_string(ks_json_get(pts, "options"), "gid=5") &&
               has_string(ks_json_get(pts, "options"), "newinstance"),
           "rootless: devpts without gid=5");
}

static void test_features(void)
{
    _cleanup_json_ json_object *f = ks_spec_features();
    tap_ok(f != NULL, "features built");
    TAP_EQ_STR(ks_json_str(f, "ociVersionMin"), "1.0.0", "ociVersionMin");
    TAP_EQ_STR(ks_json_str(f, "ociVersionMax"), "1.3.0", "ociVersionMax");
    json_object *hooks = ks_json_get(f, "hooks");
    tap_ok(hooks && json_object_array_length(hooks) == 6 && has_string(hooks, "createRuntime"),
           "six hook kinds");
    json_object *mo = ks_json_get(f, "mountOptions");
    tap_ok(has_string(mo, "rro") && has_string(mo, "idmap") && has_string(mo, "tmpcopyup") &&
               has_string(mo, "nosymfollow") && !has_string(mo, "gid=5"),
           "mount options");
    json_object *l = ks_json_get(f, "linux");
    tap_ok(json_object_array_length(ks_json_get(l, "namespaces")) == 8 &&
               has_string(ks_json_get(l, "namespaces"), "time"),
           "eight namespaces");
    tap_ok(has_string(ks_json_get(l, "capabilities"), "CAP_SYS_ADMIN"), "capabilities listed");
    json_object *cg = ks_json_get(l, "cgroup");
    tap_ok(ks_json_bool(cg, "v1", false) && ks_json_bool(cg, "v2", false) &&
               !ks_json_bool(cg, "systemd", true),
           "cgroup features");
    tap_ok(ks_json_bool(ks_json_get(l, "seccomp"), "enabled", false), "seccomp enabled");
    tap_ok(!ks_json_bool(ks_json_get(l, "apparmor"), "enabled", true), "apparmor disabled");
    tap_ok(ks_json_bool(ks_json_get(ks_json_get(l, "mountExtensions"), "idmap"), "enabled", false),
           "idmap mounts");
    TAP_EQ_STR(
        ks_json_str(ks_json_get(f, "annotations"), "org.opencontainers.runc.checkpoint.enabled"),
        "false", "checkpoint annotation");
}

static int write_config(const char *dir, const char *data, size_t len)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/config.json", dir) < 0)
        return -ENOMEM;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    return ks_write_all(fd, data, len);
}

static void expect_load_error(const char *dir, const char *expected, const char *what)
{
    _cleanup_json_ json_object *spec = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_spec_load(dir, &spec, &err);
    bool ok = r < 0 && spec == NULL && err && strstr(err->msg, expected) != NULL;
    if (!tap_ok(ok, "load: %s", what))
        tap_diag("  got %d \"%s\", expected \"%s\"", r, err ? err->msg : "(none)", expected);
}

static void test_load(void)
{
    char dir[] = "/tmp/kiste-test-spec-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        tap_ok(false, "mkdtemp");
        return;
    }

    expect_load_error(dir, "config.json: open", "missing config.json");

    tap_ok(write_config(dir, minimal, strlen(minimal)) == 0, "write config.json");
    _cleanup_json_ json_object *spec = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_spec_load(dir, &spec, &err);
    if (!tap_ok(r == 0 && spec != NULL, "load a valid bundle"))
        tap_diag("  %s", err ? err->msg : "(none)");
    TAP_EQ_STR(ks_json_str(spec, "ociVersion"), "1.0.0", "loaded ociVersion");

    static const char not_json[] = "ociVersion: 1.0.0\n";
    write_config(dir, not_json, strlen(not_json));
    expect_load_error(dir, "config.json: invalid JSON", "not JSON");

    _cleanup_free_ char *trailing = NULL;
    if (asprintf(&trailing, "%s\n{}", minimal) < 0)
        abort();
    write_config(dir, trailing, strlen(trailing));
    expect_load_error(dir, "config.json: invalid JSON at byte", "trailing garbage");

    static const char truncated[] = "{\"ociVersion\": \"1.0.0\", \"root\": {";
    write_config(dir, truncated, strlen(truncated));
    expect_load_error(dir, "config.json: invalid JSON", "truncated JSON");

    static const char bad[] = "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"r\"}, "
                              "\"process\": {\"args\": [\"sh\", 1], \"cwd\": \"/\"}}";
    write_config(dir, bad, strlen(bad));
    expect_load_error(dir, "config.json: process.args[1]: expected a string", "invalid config");

    write_config(dir, "", 0);
    expect_load_error(dir, "config.json: invalid JSON", "empty file");

    /* A document over the size limit is refused before it is parsed. */
    size_t big = (16u << 20) + 1;
    char *buf = malloc(big);
    if (buf) {
        memset(buf, ' ', big);
        memcpy(buf, minimal, strlen(minimal));
        write_config(dir, buf, big);
        free(buf);
        expect_load_error(dir, "larger than", "config.json over 16 MiB");
    }

    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/config.json", dir) < 0)
        abort();
    unlink(path);
    mkdir(path, 0700);
    expect_load_error(dir, "not a regular file", "config.json is a directory");
    rmdir(path);
    rmdir(dir);
}

int main(void)
{
    tap_plan_auto();
    test_valid();
    test_invalid();
    test_not_object();
    test_default();
    test_load();
    test_features();
    return tap_done();
}
