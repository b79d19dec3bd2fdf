"""Docker's default seccomp profile (as `kiste __seccomp-default-profile` prints it) applied by
kiste-runtime to a busybox container: ordinary programs run, namespace and mount syscalls are
refused unless the bounding set has CAP_SYS_ADMIN."""

import json
import subprocess

from conftest import KISTE

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def default_profile(caps):
    p = subprocess.run([str(KISTE), "__seccomp-default-profile"] + caps, capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout)


def set_caps(bundle, caps):
    for k in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][k] = list(caps)


def status_field(text, name):
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k == name:
            return v.strip()
    return None


def test_ordinary_programs_run(bundle):
    set_caps(bundle, DOCKER_CAPS)
    bundle.config["linux"]["seccomp"] = default_profile(DOCKER_CAPS)
    p = bundle.run(["sh", "-c", "ls / && cat /proc/self/status"])
    assert p.returncode == 0, p.stderr
    assert "bin" in p.stdout.split()
    assert status_field(p.stdout, "Seccomp") == "2", p.stdout  # filter mode
    # Pipes, a subshell and a few applets: fork, execve, pipe2, wait4 … all pass.
    p = bundle.run(["sh", "-c", "echo abc | tr a-z A-Z; (date +%Y >/dev/null); id -u"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["ABC", "0"]


def test_namespaces_and_mounts_refused(bundle):
    # The bounding set has CAP_SYS_ADMIN, the profile was made without it: what refuses is the
    # filter, not the capability check.
    set_caps(bundle, DOCKER_CAPS + ["CAP_SYS_ADMIN"])
    bundle.config["linux"]["seccomp"] = default_profile(DOCKER_CAPS)
    p = bundle.run(["unshare", "-u", "true"])
    assert p.returncode != 0
    assert "not permitted" in p.stderr, p.stderr
    p = bundle.run(["sh", "-c", "mkdir -p /dev/m && mount -t tmpfs none /dev/m"])
    assert p.returncode != 0
    # busybox's words for EPERM
    assert "permission denied (are you root?)" in p.stderr, p.stderr


def test_cap_sys_admin_opens_them(bundle):
    caps = DOCKER_CAPS + ["CAP_SYS_ADMIN"]
    set_caps(bundle, caps)
    bundle.config["linux"]["seccomp"] = default_profile(caps)
    p = bundle.run(["sh", "-c", "unshare -u hostname inner && mkdir -p /dev/m && "
                    "mount -t tmpfs none /dev/m && echo mounted"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "mounted"
