"""Cgroup resources on this machine's hybrid layout: v1 controllers under
/sys/fs/cgroup/<controller>/<path>, hugetlb in the v2 hierarchy at /sys/fs/cgroup/unified;
limits at create, `update`, `events --stats`, cgroupsPath forms, and removal on delete."""

import json
import os
from pathlib import Path

import pytest

from conftest import wait_for

CG = Path("/sys/fs/cgroup")


def I(name):
    """Container ids name their cgroups under the shared /kiste parent: unique per run, so two
    suites on one machine do not meet there."""
    return f"{name}-{os.getpid()}"


def hierarchies():
    """Every mounted cgroup hierarchy (v1 controllers, named ones and the v2 one)."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    out = []
    for m in mounts:
        sep = m.index("-")
        if m[sep + 1] in ("cgroup", "cgroup2") and m[4].startswith(str(CG) + "/"):
            out.append(Path(m[4]))
    return out


def v1(controller, path):
    return CG / controller / path


def read(controller, path, file):
    return (v1(controller, path) / file).read_text().strip()


def start(bundle, id, args=("sleep", "100")):
    bundle.config["process"]["args"] = list(args)
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, id)
    return bundle.state(id)["pid"]


def assert_gone_everywhere(path):
    for h in hierarchies():
        assert not (h / path).exists(), f"{h / path} left behind"


def test_memory_limit(bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20, "reservation": 32 << 20}}
    start(bundle, I("mem1"))
    assert int(read("memory", "kiste/" + I("mem1"), "memory.limit_in_bytes")) == 64 << 20
    assert int(read("memory", "kiste/" + I("mem1"), "memory.soft_limit_in_bytes")) == 32 << 20
    bundle.rt("delete", "--force", I("mem1"))
    assert_gone_everywhere("kiste/" + I("mem1"))


def test_tiny_memory_limit_still_runs_true(bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 1 << 20}}
    p = bundle.run(["true"])
    assert p.returncode == 0, p.stderr


def test_memory_limit_enforced(bundle):
    """A process that needs more than the limit is killed by the OOM killer."""
    bundle.config["linux"]["resources"] = {"memory": {"limit": 16 << 20, "swap": 16 << 20}}
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["size=256m"]})
    # Fill the tmpfs (charged to the cgroup) far beyond the limit: dd is killed, the shell goes
    # on.
    p = bundle.run(["sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=100 2>/dev/null; "
                    "echo rc=$? size=$(wc -c < /tmp/big)"])
    assert "rc=137 " in p.stdout  # SIGKILL, from the OOM killer
    size = int(p.stdout.split("size=")[1].split()[0])
    assert 0 < size <= 16 << 20


def test_cpu_shares_quota_period(bundle):
    bundle.config["linux"]["resources"] = {"cpu": {"shares": 512, "quota": 50000,
                                                   "period": 200000}}
    start(bundle, I("cpu1"))
    assert read("cpu", "kiste/" + I("cpu1"), "cpu.shares") == "512"
    assert read("cpu", "kiste/" + I("cpu1"), "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "kiste/" + I("cpu1"), "cpu.cfs_period_us") == "200000"
    bundle.rt("delete", "--force", I("cpu1"))
    assert_gone_everywhere("kiste/" + I("cpu1"))


def test_cpuset(bundle):
    cpus = read("cpuset", "", "cpuset.effective_cpus") if (CG / "cpuset/cpuset.effective_cpus").exists() \
        else read("cpuset", "", "cpuset.cpus")
    last = cpus.replace("-", ",").split(",")[-1]
    bundle.config["linux"]["resources"] = {"cpu": {"cpus": last, "mems": "0"}}
    pid = start(bundle, I("cs1"))
    assert read("cpuset", "kiste/" + I("cs1"), "cpuset.cpus") == last
    assert read("cpuset", "kiste/" + I("cs1"), "cpuset.mems") == "0"
    p = bundle.rt("exec", I("cs1"), "grep", "Cpus_allowed_list", "/proc/self/status")
    assert p.stdout.split()[-1] == last
    with open(f"/proc/{pid}/status") as f:
        assert f"Cpus_allowed_list:\t{last}\n" in f.read()
    bundle.rt("delete", "--force", I("cs1"))


def test_pids_limit(bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 5}}
    # The shell is one task; at most four sleeps fit, then the shell fails to fork and gives
    # up (run's delete takes the sleeps with it).
    p = bundle.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 & echo started; "
                    "done; echo all-started"])
    assert p.returncode != 0
    assert "all-started" not in p.stdout
    assert 1 <= p.stdout.split().count("started") <= 4
    assert "can't fork" in p.stderr


def test_pids_limit_file(bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 42}}
    start(bundle, I("pl1"))
    assert read("pids", "kiste/" + I("pl1"), "pids.max") == "42"
    bundle.rt("delete", "--force", I("pl1"))


def test_blkio_weight(bundle, state_root):
    bundle.config["linux"]["resources"] = {"blockIO": {"weight": 300}}
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, I("bw1"), check=False)
    if p.returncode != 0:
        # As with runc, a weight that cannot be set is an error, and a clear one.
        assert "blkio.weight" in p.stderr
        assert list(state_root.iterdir()) == []
        assert_gone_everywhere("kiste/" + I("bw1"))
        pytest.skip("no blkio weight file on this kernel (no CFQ/BFQ): checked the error only")
    # The weight file exists only below the root cgroup (BFQ's, when CFQ is gone).
    files = [f for f in ("blkio.weight", "blkio.bfq.weight")
             if (v1("blkio", "kiste/" + I("bw1")) / f).exists()]
    assert files
    assert read("blkio", "kiste/" + I("bw1"), files[0]).split()[-1] == "300"
    bundle.rt("delete", "--force", I("bw1"))


def test_blkio_throttle(bundle):
    if not (CG / "blkio/blkio.throttle.read_bps_device").exists():
        pytest.skip("no blkio throttling on this kernel")
    major, minor = (int(x) for x in Path("/sys/block/vda/dev").read_text().split(":")) \
        if Path("/sys/block/vda/dev").exists() else (7, 0)
    bundle.config["linux"]["resources"] = {"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}}
    start(bundle, I("bt1"))
    assert read("blkio", "kiste/" + I("bt1"), "blkio.throttle.read_bps_device") == \
        f"{major}:{minor} 1048576"
    assert read("blkio", "kiste/" + I("bt1"), "blkio.throttle.write_iops_device") == \
        f"{major}:{minor} 100"
    bundle.rt("delete", "--force", I("bt1"))


def test_hugepage_limit(bundle):
    sizes = os.listdir("/sys/kernel/mm/hugepages") if os.path.isdir(
        "/sys/kernel/mm/hugepages") else []
    if "hugepages-2048kB" not in sizes:
        pytest.skip("no 2 MiB huge pages on this machine")
    v2 = CG / "unified"
    if (v2 / "cgroup.controllers").exists() and \
            "hugetlb" in (v2 / "cgroup.controllers").read_text().split():
        f = v2 / "kiste" / I("hp1") / "hugetlb.2MB.max"
    elif (CG / "hugetlb").is_dir():
        f = CG / "hugetlb/kiste" / I("hp1") / "hugetlb.2MB.limit_in_bytes"
    else:
        pytest.skip("no hugetlb controller on this machine")
    bundle.config["linux"]["resources"] = {"hugepageLimits": [{"pageSize": "2MB",
                                                               "limit": 8 << 20}]}
    start(bundle, I("hp1"))
    assert f.read_text().strip() == str(8 << 20)
    bundle.rt("delete", "--force", I("hp1"))
    assert_gone_everywhere("kiste/" + I("hp1"))


def test_device_rules(bundle):
    bundle.config["process"]["capabilities"] = {
        k: ["CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_KILL"]
        for k in ("bounding", "effective", "permitted")}
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid"]})
    script = ("mknod /tmp/null c 1 3 && echo > /tmp/null && echo null-ok; "
              "mknod /tmp/fuse c 10 229 && echo fuse-mknod-ok; "
              "cat /tmp/fuse 2>&1 >/dev/null | head -c 0; true")
    bundle.config["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}]
    p = bundle.run(["sh", "-c", script])
    # The default devices are allowed; any other is not, not even to root with CAP_MKNOD.
    assert "null-ok" in p.stdout, p.stderr
    assert "fuse-mknod-ok" not in p.stdout
    assert "Operation not permitted" in p.stderr

    bundle.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "m"}]
    p = bundle.run(["sh", "-c", "mknod /tmp/fuse c 10 229 && echo fuse-mknod-ok; "
                    "cat /tmp/fuse"])
    assert "fuse-mknod-ok" in p.stdout
    # m allowed but not r: opening it is refused.
    assert "Operation not permitted" in p.stderr


def test_device_rules_in_v1_list(bundle):
    bundle.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    start(bundle, I("dv1"))
    rules = read("devices", "kiste/" + I("dv1"), "devices.list").splitlines()
    assert "c 10:229 rw" in rules
    assert "c 1:3 rwm" in rules  # /dev/null, a default device
    assert "a *:* rwm" not in rules
    bundle.rt("delete", "--force", I("dv1"))


def test_update_with_flags(bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50},
                                           "cpu": {"shares": 1024}}
    start(bundle, I("up1"))
    bundle.rt("update", "--memory", "128m", "--pids-limit", "20", "--cpu-shares", "256",
              "--cpu-quota", "30000", "--cpu-period", "100000", I("up1"))
    assert int(read("memory", "kiste/" + I("up1"), "memory.limit_in_bytes")) == 128 << 20
    assert read("pids", "kiste/" + I("up1"), "pids.max") == "20"
    assert read("cpu", "kiste/" + I("up1"), "cpu.shares") == "256"
    assert read("cpu", "kiste/" + I("up1"), "cpu.cfs_quota_us") == "30000"
    assert read("cpu", "kiste/" + I("up1"), "cpu.cfs_period_us") == "100000"
    # The container keeps running, and the new values are what a later update starts from.
    assert bundle.state(I("up1"))["status"] == "running"
    bundle.rt("update", "--pids-limit", "30", I("up1"))
    assert read("pids", "kiste/" + I("up1"), "pids.max") == "30"
    assert int(read("memory", "kiste/" + I("up1"), "memory.limit_in_bytes")) == 128 << 20
    p = bundle.rt("update", "--memory", "lots", I("up1"), check=False)
    assert p.returncode == 1 and "lots" in p.stderr
    bundle.rt("delete", "--force", I("up1"))


def test_update_with_resources_file(bundle, tmp_path):
    start(bundle, I("up2"))
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"memory": {"limit": 48 << 20}, "cpu": {"quota": 20000,
                                                                     "period": 100000},
                             "pids": {"limit": 33}}))
    bundle.rt("update", "--resources", f, I("up2"))
    assert int(read("memory", "kiste/" + I("up2"), "memory.limit_in_bytes")) == 48 << 20
    assert read("cpu", "kiste/" + I("up2"), "cpu.cfs_quota_us") == "20000"
    assert read("pids", "kiste/" + I("up2"), "pids.max") == "33"
    # From stdin, and flags win over the file.
    bundle.rt("update", "--resources", "-", "--pids-limit", "44", I("up2"),
              input=json.dumps({"pids": {"limit": 11}, "memory": {"limit": 40 << 20}}))
    assert read("pids", "kiste/" + I("up2"), "pids.max") == "44"
    assert int(read("memory", "kiste/" + I("up2"), "memory.limit_in_bytes")) == 40 << 20
    f.write_text("[1, 2]")
    p = bundle.rt("update", "--resources", f, I("up2"), check=False)
    assert p.returncode == 1 and "JSON object" in p.stderr
    bundle.rt("delete", "--force", I("up2"))


def test_update_stopped_container_refused(bundle):
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("up3"))
    assert wait_for(lambda: bundle.state(I("up3"))["status"] == "stopped")
    p = bundle.rt("update", "--pids-limit", "10", I("up3"), check=False)
    assert p.returncode == 1 and "stopped" in p.stderr
    bundle.rt("delete", I("up3"))


def test_events_stats(bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}}
    start(bundle, I("ev1"), ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    p = bundle.rt("events", "--stats", I("ev1"))
    ev = json.loads(p.stdout)
    assert ev["type"] == "stats" and ev["id"] == I("ev1")
    mem = ev["data"]["memory"]
    assert mem["usage"] > 0
    assert mem["limit"] == 64 << 20
    assert ev["data"]["pids"]["current"] == 3
    assert ev["data"]["pids"]["limit"] == 50
    assert ev["data"]["cpu"]["usage_ns"] > 0
    bundle.rt("delete", "--force", I("ev1"))
    p = bundle.rt("events", "--stats", I("ev1"), check=False)
    assert p.returncode == 1


def test_cgroups_path_absolute(bundle):
    name = f"kiste-test/abs{os.getpid()}"
    bundle.config["linux"]["cgroupsPath"] = "/" + name
    bundle.config["linux"]["resources"] = {"pids": {"limit": 77}}
    pid = start(bundle, I("cg1"))
    assert bundle.rt("state", I("cg1")).returncode == 0
    assert read("pids", name, "pids.max") == "77"
    for h in hierarchies():
        assert (h / name).is_dir(), h
    # Every hierarchy mounted here holds the process there (hierarchies mounted elsewhere on
    # the machine, e.g. by other tools, are none of kiste's business).
    mounted = {h.name for h in hierarchies()}
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    checked = 0
    for line in lines:
        _, ctl, path = line.split(":", 2)
        ctl = "unified" if ctl == "" else ctl.replace("name=", "")
        if ctl in mounted:
            assert path == "/" + name, line
            checked += 1
    assert checked == len(mounted)
    bundle.rt("delete", "--force", I("cg1"))
    assert_gone_everywhere(name)


def test_cgroups_path_relative(bundle):
    name = f"kiste-test/rel{os.getpid()}"
    bundle.config["linux"]["cgroupsPath"] = name
    start(bundle, I("cg2"))
    assert v1("memory", name).is_dir()
    bundle.rt("delete", "--force", I("cg2"))
    assert_gone_everywhere(name)


@pytest.fixture
def kiste_slice():
    """The test's own slice: removed afterwards from every hierarchy where the test made it."""
    existed = {h for h in hierarchies() if (h / "kiste.slice").exists()}
    yield "kiste.slice"
    for h in hierarchies():
        if h not in existed and (h / "kiste.slice").exists():
            os.rmdir(h / "kiste.slice")


def test_cgroups_path_systemd_style(bundle, kiste_slice):
    scope = f"kt-sd{os.getpid()}.scope"
    bundle.config["linux"]["cgroupsPath"] = f"{kiste_slice}:kt:sd{os.getpid()}"
    bundle.config["linux"]["resources"] = {"memory": {"limit": 50 << 20}}
    pid = start(bundle, I("cg3"))
    path = f"{kiste_slice}/{scope}"
    assert int(read("memory", path, "memory.limit_in_bytes")) == 50 << 20
    for h in hierarchies():
        assert (h / path).is_dir(), h
    with open(f"/proc/{pid}/cgroup") as f:
        assert f":/{path}\n" in f.read()
    bundle.rt("delete", "--force", I("cg3"))
    assert_gone_everywhere(path)


def test_cgroups_path_nested_slice(bundle, kiste_slice):
    bundle.config["linux"]["cgroupsPath"] = f"kiste-t{os.getpid()}.slice:kt:n"
    start(bundle, I("cg4"))
    path = f"kiste.slice/kiste-t{os.getpid()}.slice/kt-n.scope"
    assert v1("pids", path).is_dir()
    bundle.rt("delete", "--force", I("cg4"))
    assert_gone_everywhere(path)
    for h in hierarchies():
        p = h / f"kiste.slice/kiste-t{os.getpid()}.slice"
        if p.exists():
            os.rmdir(p)


def test_delete_removes_cgroup_in_every_hierarchy(bundle):
    start(bundle, I("del1"), ["sh", "-c", "sleep 100 & sleep 100 & wait"])
    hs = hierarchies()
    assert len(hs) >= 2
    for h in hs:
        assert (h / "kiste" / I("del1")).is_dir(), h
    bundle.rt("delete", "--force", I("del1"))
    assert_gone_everywhere("kiste/" + I("del1"))


def test_run_removes_cgroup_when_done(bundle):
    p = bundle.run(["sh", "-c", "cat /proc/self/cgroup"], id=I("rr1"))
    assert p.returncode == 0
    assert f"/kiste/{I('rr1')}" in p.stdout or ":/\n" in p.stdout  # the cgroup namespace may hide it
    assert_gone_everywhere("kiste/" + I("rr1"))


def test_failed_create_removes_cgroup(bundle, state_root):
    bundle.config["process"]["args"] = ["/no/such/program"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, I("fc1"), check=False)
    assert p.returncode == 1
    assert_gone_everywhere("kiste/" + I("fc1"))
    assert list(state_root.iterdir()) == []


def test_bad_resource_value_fails_create_cleanly(bundle, state_root):
    bundle.config["linux"]["resources"] = {"cpu": {"cpus": "999-1000"}}
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, I("br1"), check=False)
    assert p.returncode == 1
    assert "cpuset.cpus" in p.stderr
    assert_gone_everywhere("kiste/" + I("br1"))
    assert list(state_root.iterdir()) == []
