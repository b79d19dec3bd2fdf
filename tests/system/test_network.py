"""Container networking with real traffic, only between the host and containers or network
namespaces the tests make: the default bridge, published ports (-p on 127.0.0.1 and on the
host's address, -P), --network none/host/container:, user-defined networks, connect and
disconnect, NAT out to a namespace playing the outside host, and the release of everything a
container's network held on stop, remove and after its monitor is killed."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import wait_for
from test_containers import busybox_tar, kiste  # noqa: F401 (fixtures)


def host_ipv4():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "up"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f[1] != "lo" and not f[1].startswith(("kiste", "ks")):
            return f[3].split("/")[0]
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    end = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def links():
    return set(os.listdir("/sys/class/net"))


def bridges(kiste):
    """The bridge names of the root's networks (other roots run their own meanwhile)."""
    nets = json.loads(kiste("network", "inspect", *kiste("network", "ls", "-q").stdout.split())
                      .stdout)
    return {n["Options"]["com.docker.network.bridge.name"] for n in nets
            if "com.docker.network.bridge.name" in n["Options"]}


def mine(kiste):
    """What of the root's network is in the kernel: its bridges, the veths on them, and its
    nftables table."""
    brs = bridges(kiste)
    found = set()
    for link in links():
        try:
            master = os.path.basename(os.readlink(f"/sys/class/net/{link}/master"))
        except OSError:
            master = None
        if link in brs or master in brs:
            found.add(link)
    default = [b for b in brs if b.startswith("kiste0")][0]
    table = "kiste" + default[len("kiste0"):]
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    if f"table ip {table}" in out.splitlines():
        found.add(f"nft:{table}")
    return found


def routes():
    return subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout


def httpd(kiste, *args, name=None):
    """A busybox httpd container serving its /etc on port 80."""
    argv = ["run", "-d"] + (["--name", name] if name else []) + list(args) + [
        "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
    return kiste(*argv).stdout.strip()


def test_bridge_default_and_published_ports(kiste):
    lo_port, any_port = free_port(), free_port()
    cid = httpd(kiste, "-p", f"127.0.0.1:{lo_port}:80", "-p", f"{any_port}:80", name="web")
    info = kiste.inspect("web")
    ns = info["NetworkSettings"]
    assert info["HostConfig"]["NetworkMode"] == "default"
    assert ns["IPAddress"] and ns["Gateway"] and ns["MacAddress"].startswith("02:42:")
    assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
    assert {"HostIp": "127.0.0.1", "HostPort": str(lo_port)} in ns["Ports"]["80/tcp"]
    assert {"HostIp": "0.0.0.0", "HostPort": str(any_port)} in ns["Ports"]["80/tcp"]
    # The container's address is on the host's route table through the bridge.
    assert ns["Gateway"] in subprocess.run(["ip", "-4", "addr"], capture_output=True,
                                           text=True).stdout
    # From the host: 127.0.0.1, the host's own address, and the container's address itself.
    assert "root:x:0:0" in http_get(f"http://127.0.0.1:{lo_port}/passwd")
    addr = host_ipv4()
    assert addr, "the host has no IPv4 address"
    assert "root:x:0:0" in http_get(f"http://{addr}:{any_port}/passwd")
    assert "root:x:0:0" in http_get(f"http://{ns['IPAddress']}:80/passwd")
    # Hairpin: a container reaching the published port on the host's address.
    p = kiste("run", "--rm", "busybox", "timeout", "10", "wget", "-q", "-O", "-",
              f"http://{addr}:{any_port}/group")
    assert "root:x:0:" in p.stdout
    ps = kiste("ps", "--format", "{{.Ports}}").stdout
    assert f"127.0.0.1:{lo_port}->80/tcp" in ps and f"0.0.0.0:{any_port}->80/tcp" in ps
    out = kiste("port", "web").stdout
    assert f"80/tcp -> 127.0.0.1:{lo_port}" in out and f"80/tcp -> 0.0.0.0:{any_port}" in out
    assert kiste("port", "web", "80/tcp").stdout.count("\n") == 2
    assert kiste("port", "web", "81", check=False).returncode != 0
    held = mine(kiste)
    assert len([x for x in held if x.startswith("nft:")]) == 1 and len(held) == 3, held
    # Stop releases the address, the veth, the rules, the bridge and the table.
    kiste("stop", "-t", "1", "web")
    assert wait_for(lambda: mine(kiste) == set())
    assert kiste.inspect("web")["NetworkSettings"]["IPAddress"] == ""
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{lo_port}/passwd", timeout=1)
    # A start attaches again, on the same published port.
    kiste("start", "web")
    assert "root:x:0:0" in http_get(f"http://127.0.0.1:{lo_port}/passwd")
    kiste("rm", "-f", cid)
    assert wait_for(lambda: mine(kiste) == set())


def test_publish_all_and_port_conflicts(kiste):
    httpd(kiste, "--expose", "80", "--expose", "9000-9001/udp", "-P", name="all")
    ports = kiste.inspect("all")["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "9000/udp", "9001/udp"}
    host_port = int(ports["80/tcp"][0]["HostPort"])
    assert 49153 <= host_port <= 65535
    assert "root:x:0:0" in http_get(f"http://127.0.0.1:{host_port}/passwd")
    # The same host port twice is refused, and nothing of the second container stays.
    before = mine(kiste)
    p = kiste("run", "-d", "-p", f"{host_port}:80", "busybox", "sleep", "30", check=False)
    assert p.returncode != 0 and "already allocated" in p.stderr
    assert wait_for(lambda: mine(kiste) == before)
    # A port something on the host listens on is refused too.
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        p = kiste("run", "-d", "-p", f"{taken}:80", "busybox", "sleep", "30", check=False)
        assert p.returncode != 0 and "already allocated" in p.stderr
    for bad in ("-p=abc", "-p=1.2.3:80:80", "-p=80/icmp", "-p=8000-8010:80-85"):
        p = kiste("run", "--rm", bad, "busybox", "true", check=False)
        assert p.returncode == 125, bad


def test_none_has_only_lo(kiste):
    out = kiste("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
    assert out.split() == ["lo"]
    kiste("create", "--name", "quiet", "--net", "none", "busybox", "true")
    assert kiste.inspect("quiet")["HostConfig"]["NetworkMode"] == "none"


def test_host_sees_host_links(kiste):
    before = links()
    out = set(kiste("run", "--rm", "--network", "host", "busybox", "ls",
                    "/sys/class/net").stdout.split())
    after = links()
    # Other tests make and delete links meanwhile: what stayed is seen, nothing else is.
    assert before & after <= out <= before | after and "lo" in out and len(out) > 1


def test_container_shares_one_stack(kiste):
    cid = httpd(kiste, name="first")
    ip = kiste.inspect("first")["NetworkSettings"]["IPAddress"]
    out = kiste("run", "--rm", "--network", "container:first", "busybox", "sh", "-c",
                "ip -o -4 addr show eth0; wget -q -O - http://127.0.0.1/group").stdout
    assert f"inet {ip}/" in out and "root:x:0:" in out
    kiste("stop", "-t", "1", cid)
    p = kiste("run", "--rm", "--network", "container:first", "busybox", "true", check=False)
    assert p.returncode == 125 and "non running container" in p.stderr


def free_subnet():
    taken = routes()
    for i in range(200, 250):
        net = f"10.{i}.7.0/24"
        if f"10.{i}." not in taken:
            return net, f"10.{i}.7"
    pytest.skip("no free 10.x subnet")


def test_user_network_two_containers(kiste):
    subnet, prefix = free_subnet()
    nid = kiste("network", "create", "--subnet", subnet, "--label", "team=a", "appnet").stdout.strip()
    assert len(nid) == 64
    assert "appnet" in kiste("network", "ls", "--filter", "label=team=a", "--format",
                             "{{.Name}}").stdout
    assert kiste("network", "ls", "-q", "--filter", "name=nonexistent").stdout == ""
    httpd(kiste, "--network", "appnet", "--ip", f"{prefix}.50", "--network-alias", "web",
          name="server")
    out = kiste("run", "--rm", "--net", "appnet", "busybox", "wget", "-q", "-O", "-",
                f"http://{prefix}.50/group").stdout
    assert "root:x:0:" in out
    net = json.loads(kiste("network", "inspect", "appnet").stdout)[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == subnet and net["Labels"] == {"team": "a"}
    assert [c["IPv4Address"] for c in net["Containers"].values()] == [f"{prefix}.50/24"]
    # The hosts file of the network, for the resolver: IP, name, short ID, aliases.
    hosts = (kiste.runroot / "networks" / nid / "hosts").read_text()
    sid = kiste.inspect("server")["Id"]
    assert hosts == f"{prefix}.50 server {sid[:12]} web\n"
    assert (kiste.runroot / "containers" / sid / "networks").read_text() == nid + "\n"
    # connect a running container on the default bridge; then disconnect it.
    kiste("run", "-d", "--name", "client", "busybox", "sleep", "60")
    kiste("network", "connect", "--alias", "cli", "appnet", "client")
    out = kiste("exec", "client", "wget", "-q", "-O", "-", f"http://{prefix}.50/group").stdout
    assert "root:x:0:" in out
    assert " client " in (kiste.runroot / "networks" / nid / "hosts").read_text()
    assert set(kiste.inspect("client")["NetworkSettings"]["Networks"]) == {"bridge", "appnet"}
    p = kiste("network", "rm", "appnet", check=False)
    assert p.returncode != 0
    kiste("network", "disconnect", "appnet", "client")
    assert "eth1" not in kiste("exec", "client", "ls", "/sys/class/net").stdout
    # Refusals Docker makes.
    for args in (["--ip", "172.17.9.9"], ["--network-alias", "x"]):
        p = kiste("run", "--rm", *args, "busybox", "true", check=False)
        assert p.returncode == 125
    kiste("rm", "-f", "server", "client")
    assert wait_for(lambda: mine(kiste) == set())
    assert kiste("network", "prune", "-f").stdout == "Deleted Networks:\nappnet\n"
    assert kiste("network", "ls", "--format", "{{.Name}}").stdout.split() == [
        "bridge", "host", "none"]
    p = kiste("network", "rm", "bridge", check=False)
    assert p.returncode != 0 and "pre-defined" in p.stderr


@pytest.fixture
def outside():
    """A network namespace playing a host outside, behind a veth with addresses of
    TEST-NET-2, serving HTTP with a CGI that answers the client's address."""
    if "198.51.100." in routes():
        pytest.skip("198.51.100.0/24 is routed on this machine")
    name = f"ksout{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    web = Path(f"/tmp/{name}-www")
    try:
        subprocess.run(["ip", "link", "add", f"{name}h", "type", "veth", "peer", "name",
                        f"{name}o", "netns", name], check=True)
        subprocess.run(["ip", "addr", "add", "198.51.100.1/24", "dev", f"{name}h"], check=True)
        subprocess.run(["ip", "link", "set", f"{name}h", "up"], check=True)
        for cmd in (["ip", "addr", "add", "198.51.100.2/24", "dev", f"{name}o"],
                    ["ip", "link", "set", f"{name}o", "up"], ["ip", "link", "set", "lo", "up"]):
            subprocess.run(["ip", "netns", "exec", name] + cmd, check=True)
        (web / "cgi-bin").mkdir(parents=True, exist_ok=True)
        cgi = web / "cgi-bin" / "ip"
        cgi.write_text('#!/bin/busybox sh\necho "Content-Type: text/plain"\necho\n'
                       'echo "$REMOTE_ADDR"\n')
        cgi.chmod(0o755)
        srv = subprocess.Popen(["ip", "netns", "exec", name, "busybox", "httpd", "-f", "-p",
                                "198.51.100.2:8000", "-h", str(web)])
        yield "198.51.100.2"
        srv.terminate()
        srv.wait(timeout=10)
    finally:
        subprocess.run(["ip", "link", "del", f"{name}h"], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["rm", "-rf", str(web)])


def test_nat_out_to_outside_host(kiste, outside):
    # The outside host has no route to the bridge's subnet: only masquerade brings answers.
    out = kiste("run", "--rm", "busybox", "timeout", "10", "wget", "-q", "-O", "-",
                f"http://{outside}:8000/cgi-bin/ip").stdout
    assert out.strip() == "198.51.100.1"
    # An internal network does not reach past the host.
    subnet, _ = free_subnet()
    kiste("network", "create", "--internal", "--subnet", subnet, "inside")
    p = kiste("run", "--rm", "--network", "inside", "busybox", "timeout", "3", "wget", "-q",
              "-O", "-", f"http://{outside}:8000/cgi-bin/ip", check=False)
    assert p.returncode != 0
    kiste("network", "rm", "inside")


def test_release_after_monitor_killed(kiste):
    port = free_port()
    cid = httpd(kiste, "-p", f"127.0.0.1:{port}:80", name="victim")
    assert "root:x:0:0" in http_get(f"http://127.0.0.1:{port}/passwd")
    mon = int((kiste.runroot / "containers" / cid / "monitor.pid").read_text())
    os.kill(mon, 9)
    # The next command sees the dead monitor and releases what the container held.
    assert wait_for(lambda: "Exited" in kiste("ps", "-a", "--format", "{{.Status}}").stdout)
    assert wait_for(lambda: mine(kiste) == set())
    # Its port and address are free for the next container.
    httpd(kiste, "-p", f"127.0.0.1:{port}:80", name="next")
    assert "root:x:0:0" in http_get(f"http://127.0.0.1:{port}/passwd")
    assert kiste.inspect("next")["NetworkSettings"]["IPAddress"]


def test_exit_releases_without_a_command(kiste):
    """A container that exits on its own: its monitor releases the network."""
    kiste("run", "-d", "--name", "short", "-p", f"127.0.0.1:{free_port()}:80", "busybox",
          "sleep", "0.3")
    assert wait_for(lambda: mine(kiste) == set(), timeout=10)
    assert kiste("port", "short").stdout == ""
