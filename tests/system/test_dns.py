"""Container name resolution: /etc/hostname, /etc/hosts and /etc/resolv.conf as Docker writes
them for --network none, the default bridge and host, with --dns, --dns-search, --dns-option,
--add-host (host-gateway too), --hostname, --domainname and --link; and the embedded resolver on
127.0.0.11 that kiste-monitor serves inside a container's network namespace: names of the
containers on the same user networks (name, short ID, alias, PTR) and everything else forwarded
to an upstream server, here a tiny DNS server of the test's own on the host's 127.0.0.1.

The host's resolv.conf is replaced by a file of the test's own (KISTE_RESOLV_CONF), so no
query ever leaves for a real resolver."""

import json
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, RUNTIME, pid_alive, wait_for
from test_containers import busybox_tar, kiste  # noqa: F401 (fixtures)

MONITOR = BUILD / "src" / "monitor" / "kiste-monitor"

HOST_RESOLV = ("# the test's host file\nsearch corp.example\nnameserver 127.0.0.53\n"
               "nameserver 10.9.9.9\nnameserver ::1\noptions edns0\n")
LOCALHOST = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
             "ff02::2\tip6-allrouters\n")


@pytest.fixture
def host_resolv(tmp_path, monkeypatch):
    p = tmp_path / "host-resolv.conf"
    p.write_text(HOST_RESOLV)
    monkeypatch.setenv("KISTE_RESOLV_CONF", str(p))
    return p


def etc(kiste, *args):
    """The container's hostname, hosts and resolv.conf, as it sees them."""
    out = kiste("run", "--rm", *args, "busybox", "sh", "-c",
                "cat /etc/hostname; echo @@; cat /etc/hosts; echo @@; cat /etc/resolv.conf").stdout
    hostname, hosts, resolv = out.split("@@\n")
    return hostname, hosts, resolv


def host_ipv4():
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "up"], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f[1] != "lo":
            return f[3].split("/")[0]
    return None


def bridge_works(kiste):
    p = kiste("run", "--rm", "busybox", "true", check=False)
    return p.returncode == 0


# ---------------------------------------------------------------------------------------------
# The files


def test_network_none_files(kiste, host_resolv):
    hostname, hosts, resolv = etc(kiste, "--network", "none", "-h", "web", "--domainname",
                                  "corp.example", "--add-host", "db:10.1.1.1",
                                  "--add-host", "six:fd00::1")
    assert hostname == "web\n"
    # No address of its own: only the localhost lines and the extra hosts.
    assert hosts == LOCALHOST + "10.1.1.1\tdb\nfd00::1\tsix\n"
    # Loopback servers cannot be reached from the container's namespace: dropped.
    assert resolv == ("# the test's host file\nsearch corp.example\nnameserver 10.9.9.9\n"
                      "options edns0\n")


def test_defaults_when_only_loopback_servers(kiste, host_resolv):
    host_resolv.write_text("nameserver 127.0.0.53\nsearch x.example\n")
    _, _, resolv = etc(kiste, "--network", "none")
    assert resolv == "search x.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_dns_flags_replace_their_parts(kiste, host_resolv):
    _, _, resolv = etc(kiste, "--network", "none", "--dns", "10.2.2.2", "--dns", "fd00::53",
                       "--dns-search", "a.example", "--dns-search", "b.example.",
                       "--dns-option", "ndots:2", "--dns-opt", "timeout:1")
    assert resolv == ("search a.example b.example\nnameserver 10.2.2.2\nnameserver fd00::53\n"
                      "options ndots:2 timeout:1\n")
    _, _, resolv = etc(kiste, "--network", "none", "--dns-search", ".")
    assert resolv == "nameserver 10.9.9.9\noptions edns0\n"


def test_flags_stored_as_docker_does(kiste, host_resolv):
    kiste("create", "--name", "c1", "--network", "none", "--dns", "10.2.2.2", "--dns-search",
          "a.example", "--dns-option", "ndots:2", "--add-host", "db:10.1.1.1", "busybox", "true")
    hc = kiste.inspect("c1")["HostConfig"]
    assert hc["Dns"] == ["10.2.2.2"]
    assert hc["DnsSearch"] == ["a.example"]
    assert hc["DnsOptions"] == ["ndots:2"]
    assert hc["ExtraHosts"] == ["db:10.1.1.1"]


@pytest.mark.parametrize("flag,value,says", [
    ("--dns", "dns.example", "dns.example is not an ip address"),
    ("--dns", "1.2.3.4:99999", "1.2.3.4:99999"),
    ("--dns-search", "-bad.example", "-bad.example is not a valid domain"),
    ("--dns-search", "a..b", "a..b is not a valid domain"),
    ("--dns-option", "two words", "two words"),
    ("--add-host", "nocolon", "bad format for add-host: \"nocolon\""),
    ("--add-host", "db:10.1.1", "invalid IP address in add-host: \"10.1.1\""),
    ("--add-host", ":10.1.1.1", "bad format for add-host"),
    ("--link", "a:b:c", "bad format for links: a:b:c"),
])
def test_invalid_values_refused(kiste, flag, value, says):
    p = kiste("run", "--rm", "--network", "none", flag, value, "busybox", "true", check=False)
    assert p.returncode == 125, p.stderr
    assert says in p.stderr


def test_files_are_mounted_read_only_with_a_read_only_root(kiste, host_resolv):
    p = kiste("run", "--rm", "--network", "none", "--read-only", "busybox", "sh", "-c",
              "echo x >> /etc/hosts", check=False)
    assert p.returncode != 0
    out = kiste("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                "echo '10.3.3.3 mine' >> /etc/hosts && grep mine /etc/hosts").stdout
    assert out == "10.3.3.3 mine\n"


def test_user_mount_over_hosts_wins(kiste, host_resolv, tmp_path):
    mine = tmp_path / "myhosts"
    mine.write_text("10.7.7.7 mine\n")
    p = kiste("run", "--rm", "--network", "none", "-v", f"{mine}:/etc/hosts:ro", "busybox",
              "cat", "/etc/hosts", check=False)
    if p.returncode != 0 and "not available" in p.stderr:
        pytest.skip("volumes are not available")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "10.7.7.7 mine\n"


def test_host_network_uses_the_hosts_files(kiste, host_resolv):
    hostname, hosts, resolv = etc(kiste, "--network", "host", "--add-host", "gw:host-gateway")
    assert hostname == socket.gethostname() + "\n"
    assert hosts == Path("/etc/hosts").read_text().rstrip("\n") + "\n" + \
        f"{host_ipv4()}\tgw\n"
    # The host's resolvers are reachable from the host's namespace: the file as it is.
    assert resolv == HOST_RESOLV
    # The container takes the host's name, as with Docker.
    out = kiste("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                "hostname; echo $HOSTNAME").stdout
    assert out == f"{socket.gethostname()}\n" * 2


def test_default_bridge_files(kiste, host_resolv):
    if not bridge_works(kiste):
        pytest.skip("the default bridge network is not available")
    out = kiste("run", "--rm", "-h", "web", "--add-host", "gw:host-gateway", "busybox", "sh",
                "-c", "cat /etc/hosts; echo @@; ip -4 -o addr show eth0; ip route; echo @@; "
                "cat /etc/resolv.conf").stdout
    hosts, net, resolv = out.split("@@\n")
    ip = net.split()[3].split("/")[0]
    gateway = [line.split()[2] for line in net.splitlines() if line.startswith("default")][0]
    assert hosts == LOCALHOST + f"{gateway}\tgw\n{ip}\tweb\n"
    assert resolv == ("# the test's host file\nsearch corp.example\nnameserver 10.9.9.9\n"
                      "options edns0\n")


def test_legacy_link(kiste, host_resolv):
    if not bridge_works(kiste):
        pytest.skip("the default bridge network is not available")
    kiste("run", "-d", "--name", "db1", "-h", "dbhost", "busybox", "sleep", "60")
    ip = kiste("exec", "db1", "sh", "-c", "ip -4 -o addr show eth0").stdout.split()[3]
    ip = ip.split("/")[0]
    _, hosts, _ = etc(kiste, "--link", "db1:database")
    assert f"{ip}\tdatabase dbhost db1\n" in hosts
    _, hosts, _ = etc(kiste, "--link", "db1")
    assert f"{ip}\tdb1 dbhost\n" in hosts
    kiste("stop", "-t", "0", "db1")
    p = kiste("run", "--rm", "--link", "db1:database", "busybox", "true", check=False)
    assert p.returncode != 0
    assert "Cannot link to a non running container" in p.stderr


def test_container_mode_uses_the_others_files(kiste, host_resolv):
    kiste("run", "-d", "--name", "base", "--network", "none", "-h", "basehost",
          "--add-host", "x:10.4.4.4", "busybox", "sleep", "60")
    p = kiste("run", "--rm", "--network", "container:base", "busybox", "sh", "-c",
              "cat /etc/hostname /etc/hosts", check=False)
    if p.returncode != 0 and "container:" in p.stderr:
        pytest.skip("container: network mode is not available")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "basehost\n" + LOCALHOST + "10.4.4.4\tx\n"


# ---------------------------------------------------------------------------------------------
# A DNS server of the test's own, as the upstream


def dns_name(data, off):
    labels = []
    while data[off]:
        n = data[off]
        labels.append(data[off + 1:off + 1 + n].decode())
        off += 1 + n
    return ".".join(labels), off + 1


class Upstream:
    """Answers A queries for NAMES on 127.0.0.1 (a free port) and NXDOMAIN for others."""

    NAMES = {"outside.test": "198.51.100.7"}

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            qid, flags = struct.unpack(">HH", data[:4])
            name, end = dns_name(data, 12)
            qtype = struct.unpack(">H", data[end:end + 2])[0]
            self.queries.append((name, qtype))
            question = data[12:end + 4]
            ip = self.NAMES.get(name.lower())
            if ip and qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
                head = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0)
            else:
                answer = b""
                head = struct.pack(">HHHHHH", qid, 0x8180 | (0 if ip else 3), 1, 0, 0, 0)
            self.sock.sendto(head + question + answer, addr)

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


def query(name, qtype=1, qid=0x4242):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


# ---------------------------------------------------------------------------------------------
# The embedded resolver, on kiste-monitor in a network namespace the test makes

class Netns:
    def __init__(self, path: Path):
        self.path = path
        path.touch()
        subprocess.run(["unshare", f"--net={path}", "true"], check=True)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args, check=True, input=None):
        return subprocess.run(["nsenter", f"--net={self.path}", *args], capture_output=True,
                              text=True, check=check, input=input)

    def close(self):
        subprocess.run(["umount", str(self.path)], check=False)
        self.path.unlink()


ASK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else
                  socket.SOCK_STREAM)
s.settimeout(30)
q = bytes.fromhex(sys.argv[2])
if sys.argv[1] == "udp":
    s.sendto(q, ("127.0.0.11", 53))
    print(s.recv(4096).hex())
else:
    s.connect(("127.0.0.11", 53))
    s.sendall(len(q).to_bytes(2, "big") + q)
    n = int.from_bytes(s.recv(2), "big")
    data = b""
    while len(data) < n:
        data += s.recv(n - len(data))
    print(data.hex())
"""


def parse_reply(data):
    qid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    off = 12
    for _ in range(qd):
        _, off = dns_name(data, off)
        off += 4
    answers = []
    for _ in range(an):
        assert data[off] & 0xc0 == 0xc0
        rtype, _, ttl, rdlen = struct.unpack(">HHIH", data[off + 2:off + 12])
        rdata = data[off + 12:off + 12 + rdlen]
        if rtype == 1:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype == 12:
            answers.append(dns_name(rdata, 0)[0])
        off += 12 + rdlen
    return qid, flags & 0xf, answers


@pytest.fixture
def resolver(tmp_path, bundle, upstream):
    """A kiste-monitor running `sleep` in a network namespace of the test's own, with the
    embedded resolver on and two networks' hosts files."""
    ns = Netns(tmp_path / "netns")
    nets = tmp_path / "networks"
    for nid, lines in (("aa11", "172.30.0.2 web 0123456789ab webalias\n"
                                "fd00::2 web 0123456789ab webalias\n"
                                "172.30.0.3 db 123456789abc\n"),
                       ("bb22", "172.31.0.9 cache 23456789abcd\n"),
                       ("cc33", "172.29.0.5 elsewhere 3456789abcde\n")):
        (nets / nid).mkdir(parents=True)
        (nets / nid / "hosts").write_text(lines)
    mid = f"dns-{os.getpid()}"
    run_dir = tmp_path / "run" / mid
    run_dir.mkdir(parents=True)
    (run_dir / "networks").write_text("aa11\nbb22\n")  # not cc33
    cfg = bundle.config
    cfg["process"]["args"] = ["sleep", "60"]
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "network"]
    cfg["linux"]["namespaces"].append({"type": "network", "path": str(ns.path)})
    bundle.write()
    a, b = socket.socketpair()
    cmd = [str(MONITOR), "--id", mid, "--runtime", str(RUNTIME), "--runtime-root",
           str(bundle.state_root), "--bundle", str(bundle.path), "--state-dir",
           str(tmp_path / "mon-state" / mid), "--run-dir", str(run_dir), "--sync-fd",
           str(b.fileno()), "--dns-netns", str(ns.path), "--dns-networks", str(nets),
           "--dns-upstream", "127.0.0.1:1", "--dns-upstream", f"127.0.0.1:{upstream.port}"]
    proc = subprocess.Popen(cmd, pass_fds=[b.fileno()], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    b.close()
    try:
        a.settimeout(30)
        reply = json.loads(a.makefile().readline())
        a.close()
        assert "pid" in reply, reply
        yield from _resolver_client(ns, proc, bundle, mid)
    finally:
        subprocess.run([str(RUNTIME), "--root", str(bundle.state_root), "delete", "--force",
                        mid], capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        ns.close()


def _resolver_client(ns, proc, bundle, mid):

    def ask(name, qtype=1, proto="udp", raw=None):
        q = raw if raw is not None else query(name, qtype)
        out = ns.run("python3", "-c", ASK, proto, q.hex()).stdout.strip()
        return bytes.fromhex(out)

    ask.ns = ns
    ask.proc = proc
    ask.bundle = bundle
    ask.id = mid
    yield ask


def test_resolver_answers_names_of_its_networks(resolver):
    assert parse_reply(resolver("web")) == (0x4242, 0, ["172.30.0.2"])
    assert parse_reply(resolver("WebAlias"))[1:] == (0, ["172.30.0.2"])
    assert parse_reply(resolver("0123456789ab"))[1:] == (0, ["172.30.0.2"])
    assert parse_reply(resolver("web", qtype=28))[1:] == (0, ["fd00::2"])
    assert parse_reply(resolver("cache"))[1:] == (0, ["172.31.0.9"])
    # A known name without an IPv6 address: no error, no answer.
    assert parse_reply(resolver("db", qtype=28))[1:] == (0, [])
    assert parse_reply(resolver("3.0.30.172.in-addr.arpa", qtype=12))[1:] == (0, ["db"])
    assert parse_reply(resolver("web", proto="tcp"))[1:] == (0, ["172.30.0.2"])


def test_resolver_forwards_the_rest(resolver, upstream):
    # The first upstream (port 1) does not answer: the resolver moves on to the second.
    assert parse_reply(resolver("outside.test"))[1:] == (0, ["198.51.100.7"])
    assert ("outside.test", 1) in upstream.queries
    assert parse_reply(resolver("nowhere.test"))[1] == 3  # NXDOMAIN from upstream
    # A network the container is not on is not ours to answer.
    assert parse_reply(resolver("elsewhere"))[1] == 3
    assert ("elsewhere", 1) in upstream.queries
    assert parse_reply(resolver("outside.test", proto="tcp"))[1:] == (0, ["198.51.100.7"])


def test_resolver_refuses_hostile_queries(resolver):
    # A pointer loop in the question: FORMERR, and the resolver keeps serving.
    bad = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    qid, rcode, answers = parse_reply(resolver("", raw=bad))
    assert (qid, rcode, answers) == (7, 1, [])
    assert parse_reply(resolver("web"))[1:] == (0, ["172.30.0.2"])


def test_resolver_from_inside_the_container(resolver):
    out = subprocess.run([str(RUNTIME), "--root", str(resolver.bundle.state_root), "exec",
                          resolver.id, "nslookup", "web", "127.0.0.11"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "172.30.0.2" in out.stdout


def test_monitor_with_resolver_stays_small(resolver):
    for _ in range(3):
        resolver("outside.test")
        resolver("web", proto="tcp")
    text = Path(f"/proc/{resolver.proc.pid}/smaps_rollup").read_text()
    kb = sum(int(line.split()[1]) for line in text.splitlines()
             if line.startswith(("Private_Clean:", "Private_Dirty:")))
    assert kb < 1024, text


# ---------------------------------------------------------------------------------------------
# Containers on a user-defined network, end to end


@pytest.fixture
def dnsnet(kiste):
    name = f"dnsnet{os.getpid()}"
    p = kiste("network", "create", name, check=False)
    if p.returncode != 0 and "not available" in p.stderr:
        pytest.skip("user-defined networks are not available")
    assert p.returncode == 0, p.stderr
    yield name
    ids = kiste("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        kiste("rm", "-f", *ids, check=False)
    kiste("network", "rm", name, check=False)


def container_ip(kiste, name, network):
    return kiste.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]


def test_user_network_resolves_names(kiste, host_resolv, upstream, dnsnet):
    # busybox's nslookup asks only for NAME.SEARCH when there is a search domain.
    host_resolv.write_text("nameserver 10.9.9.9\noptions edns0\n")
    kiste("run", "-d", "--name", "alpha", "--network", dnsnet, "--network-alias", "al",
          "busybox", "sleep", "60")
    kiste("run", "-d", "--name", "beta", "--network", dnsnet, "--dns",
          f"127.0.0.1:{upstream.port}", "busybox", "sleep", "60")
    kiste("run", "-d", "--name", "gamma", "busybox", "sleep", "60")  # the default bridge
    ip = container_ip(kiste, "alpha", dnsnet)
    short = kiste.inspect("alpha")["Id"][:12]
    resolv = kiste("exec", "beta", "cat", "/etc/resolv.conf").stdout
    assert resolv == "nameserver 127.0.0.11\noptions edns0 ndots:0\n"
    for name in ("alpha", short, "al", "ALPHA"):
        out = kiste("exec", "beta", "nslookup", "-type=a", name, check=False)
        assert out.returncode == 0, (name, out.stdout, out.stderr)
        assert f"Address: {ip}" in out.stdout, (name, out.stdout)
    # Reverse lookup of alpha's address gives its name.
    out = kiste("exec", "beta", "nslookup", ip).stdout
    assert "alpha" in out
    # Reachable by name.
    assert kiste("exec", "beta", "ping", "-c1", "-W5", "alpha", check=False).returncode == 0
    # alpha resolves beta too (its resolver forwards to the host's servers, which it never
    # needs here).
    beta_ip = container_ip(kiste, "beta", dnsnet)
    out = kiste("exec", "alpha", "nslookup", "-type=a", "beta", check=False)
    assert f"Address: {beta_ip}" in out.stdout, out.stdout
    # Other names go to the upstream server; a container of another network is not known.
    out = kiste("exec", "beta", "nslookup", "-type=a", "outside.test", check=False)
    assert "198.51.100.7" in out.stdout, out.stdout + out.stderr
    assert ("outside.test", 1) in upstream.queries
    out = kiste("exec", "beta", "nslookup", "-type=a", "gamma", check=False)
    assert out.returncode != 0
    assert ("gamma", 1) in upstream.queries


def test_user_network_name_goes_with_the_container(kiste, host_resolv, upstream, dnsnet):
    host_resolv.write_text("nameserver 10.9.9.9\n")
    kiste("run", "-d", "--name", "alpha", "--network", dnsnet, "busybox", "sleep", "60")
    kiste("run", "-d", "--name", "beta", "--network", dnsnet, "--dns",
          f"127.0.0.1:{upstream.port}", "busybox", "sleep", "60")
    assert kiste("exec", "beta", "nslookup", "-type=a", "alpha", check=False).returncode == 0
    # A restarted container gets a new monitor and resolver in its new namespace.
    kiste("restart", "-t", "0", "beta")
    out = kiste("exec", "beta", "nslookup", "-type=a", "alpha", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    kiste("rm", "-f", "alpha")
    out = kiste("exec", "beta", "nslookup", "-type=a", "alpha", check=False)
    assert out.returncode != 0, out.stdout
