"""Decorators through the mount: delay, error and persistent reservations
(ioctls on the image, .ctl/NAME/pr, ptpl), and stacks of several
decorators under fio --verify. Encryption has its own file
(test_crypt.py)."""

import ctypes
import errno
import fcntl
import json
import mmap
import os
import struct
import subprocess
import time

import pytest

from conftest import make_file, run, need, ctl

MiB = 1 << 20
BS = 4096


def settings(d, disk, file):
    """The "name value" lines of a control file, as a dict."""
    out = {}
    with open(d.path(".ctl/%s/%s" % (disk, file))) as f:
        for line in f.read().splitlines():
            k, _, v = line.partition(" ")
            out[k] = v
    return out


def write_config(tmp_path, text):
    p = tmp_path / "d.conf"
    p.write_text(text)
    return p


class Direct:
    """An O_DIRECT fd on an image, with an aligned buffer."""

    def __init__(self, path, flags=os.O_RDWR):
        self.fd = os.open(path, flags | os.O_DIRECT)
        self.buf = mmap.mmap(-1, 1 << 20)

    def read(self, off, n=BS):
        """errno or 0"""
        try:
            got = os.preadv(self.fd, [memoryview(self.buf)[:n]], off)
            assert got == n
            return 0
        except OSError as e:
            return e.errno

    def write(self, off, n=BS, fill=b"\x5a"):
        self.buf[:n] = fill * n
        try:
            got = os.pwritev(self.fd, [memoryview(self.buf)[:n]], off)
            assert got == n
            return 0
        except OSError as e:
            return e.errno

    def close(self):
        os.close(self.fd)
        self.buf.close()


# ---- delay ----

def test_delay_lower_bound_live_change_and_concurrency(mount):
    need("fio")
    d = mount("--disk", "d.img=delay:40:mem:64M")
    s = settings(d, "d.img", "delay")
    assert s["read"] == "40ms" and s["write"] == "40ms"
    assert s["flush"] == "0s"
    io = Direct(d.path("d.img"))
    try:
        for op in (lambda: io.read(0), lambda: io.write(8192)):
            t = time.monotonic()
            assert op() == 0
            assert time.monotonic() - t >= 0.040
        # a live change applies to the next request
        assert ctl(d, "d.img", "delay", "read=120ms flush=60ms") == (0, "")
        t = time.monotonic()
        assert io.read(0) == 0
        assert time.monotonic() - t >= 0.120
        t = time.monotonic()
        os.fsync(io.fd)
        assert time.monotonic() - t >= 0.060
        assert settings(d, "d.img", "delay")["read"] == "120ms"
        e, why = ctl(d, "d.img", "delay", "read=fast")
        assert e == errno.EINVAL and "read" in why
        e, why = ctl(d, "d.img", "delay", "bogus=1ms")
        assert e == errno.EINVAL and "bogus" in why
        assert settings(d, "d.img", "delay")["read"] == "120ms"
    finally:
        io.close()
    # requests sleep side by side: the peak in flight shows it
    assert ctl(d, "d.img", "delay", "read=20ms") == (0, "")
    assert ctl(d, "d.img", "delay", "reset") == (0, "")
    run(["fio", "--name=c", "--filename=%s" % d.path("d.img"),
         "--rw=randread", "--bs=4k", "--ioengine=io_uring", "--iodepth=8",
         "--direct=1", "--size=16M", "--time_based", "--runtime=1"])
    s = settings(d, "d.img", "delay")
    print("delay settings after fio:", s)
    assert int(s["max_in_flight"]) >= 4
    assert int(s["in_flight"]) == 0


# ---- error ----

ERROR_CONF = """
disks = (
  { name = "e.img";
    stack = { type = "error"; enabled = false;
              disk = { type = "ram"; size = "16M"; }; }; }
);
"""


@pytest.fixture
def err(mount, tmp_path):
    d = mount("-c", write_config(tmp_path, ERROR_CONF))
    io = Direct(d.path("e.img"))
    yield d, io
    io.close()


def test_error_nth_every_and_off(err):
    d, io = err
    assert [io.read(0) for _ in range(3)] == [0, 0, 0]  # disabled
    assert ctl(d, "e.img", "error", "ops=read nth=3 enabled=true") == (0, "")
    got = [io.read(0) for _ in range(5)]
    assert got == [0, 0, errno.EIO, 0, 0]
    assert io.write(0) == 0  # not a matching op
    s = settings(d, "e.img", "error")
    assert s["matched"] == "5" and s["injected"] == "1"
    assert ctl(d, "e.img", "error", "ops=write every=2 error=ENOSPC") == (0, "")
    assert [io.write(BS * i) for i in range(6)] == \
        [0, errno.ENOSPC, 0, errno.ENOSPC, 0, errno.ENOSPC]
    assert ctl(d, "e.img", "error", "off") == (0, "")
    assert [io.write(0) for _ in range(4)] == [0] * 4
    assert ctl(d, "e.img", "error", "on") == (0, "")
    assert io.write(0) == 0 and io.write(0) == errno.ENOSPC


def test_error_byte_range_and_flush(err):
    d, io = err
    assert ctl(d, "e.img", "error", "ops=read,write offset=1M length=64K "
               "error=EIO enabled=true") == (0, "")
    assert io.read(0) == 0
    assert io.read(MiB) == errno.EIO
    assert io.write(MiB + 60 * 1024) == errno.EIO
    assert io.read(MiB - BS, 2 * BS) == errno.EIO  # overlaps
    assert io.read(MiB + 64 * 1024) == 0
    assert io.read(MiB - BS) == 0
    assert ctl(d, "e.img", "error", "ops=flush error=EROFS") == (0, "")
    with pytest.raises(OSError) as e:
        os.fsync(io.fd)
    assert e.value.errno == errno.EROFS
    assert ctl(d, "e.img", "error", "off") == (0, "")
    os.fsync(io.fd)


def test_error_rate_is_seeded(err):
    d, io = err

    def pattern():
        assert ctl(d, "e.img", "error",
                   "ops=read rate=30% seed=7 enabled=true") == (0, "")
        return [io.read(0) for _ in range(300)]

    a, b = pattern(), pattern()
    assert a == b
    failed = sum(1 for x in a if x)
    assert all(x in (0, errno.EIO) for x in a)
    assert 45 <= failed <= 135, failed
    s = settings(d, "e.img", "error")
    assert s["injected"] == str(failed) and s["matched"] == "300"


def test_error_refusals_change_nothing(err):
    d, _ = err
    before = settings(d, "e.img", "error")
    for cmd, word in (("error=EWHAT", "EWHAT"), ("error=ENOSYS", "ENOSYS"),
                      ("nth=2 every=3", "every"), ("rate=120%", "rate"),
                      ("ops=read,frobnicate", "frobnicate")):
        e, why = ctl(d, "e.img", "error", cmd)
        assert e == errno.EINVAL, cmd
        assert word.lower() in why.lower(), (cmd, why)
    after = settings(d, "e.img", "error")
    assert after == before


# ---- persistent reservations ----

PR_REGISTER = 0x401870C8
PR_RESERVE = 0x401070C9
PR_RELEASE = 0x401070CA
PR_PREEMPT = 0x401870CB
PR_PREEMPT_ABORT = 0x401870CC
PR_CLEAR = 0x401070CD
PR_READ_KEYS = 0xC01070CE
PR_READ_RESERVATION = 0x801070CF
CONFLICT = 24

TYPES = {1: "we", 2: "ea", 3: "we-ro", 4: "ea-ro", 5: "we-ar", 6: "ea-ar"}
# SPC-4: who may read and write under each type
#          holder      registrant   other
ACCESS = {
    1: ("rw", "r", "r"),
    2: ("rw", "", ""),
    3: ("rw", "rw", "r"),
    4: ("rw", "rw", ""),
    5: ("rw", "rw", "r"),
    6: ("rw", "rw", ""),
}


def ioc(fd, cmd, *fields, fmt):
    """Issue a PR ioctl; return its result (or -errno)."""
    buf = bytearray(struct.pack(fmt, *fields))
    try:
        return fcntl.ioctl(fd, cmd, buf)
    except OSError as e:
        return -e.errno


def register(fd, old, new, flags=0):
    return ioc(fd, PR_REGISTER, old, new, flags, 0, fmt="=QQII")


def reserve(fd, key, typ, flags=0):
    return ioc(fd, PR_RESERVE, key, typ, flags, fmt="=QII")


def release(fd, key, typ, flags=0):
    return ioc(fd, PR_RELEASE, key, typ, flags, fmt="=QII")


def preempt(fd, key, victim, typ, abort=False, flags=0):
    return ioc(fd, PR_PREEMPT_ABORT if abort else PR_PREEMPT, key, victim,
               typ, flags, fmt="=QQII")


def clear(fd, key, flags=0):
    return ioc(fd, PR_CLEAR, key, flags, 0, fmt="=QII")


def read_reservation(fd):
    buf = bytearray(16)
    assert fcntl.ioctl(fd, PR_READ_RESERVATION, buf) == 0
    key, gen, typ = struct.unpack("=QII", buf)
    return key, gen, typ


def read_keys(fd, room=8):
    keys = (ctypes.c_uint64 * room)()
    buf = bytearray(struct.pack("=IIQ", 0, room, ctypes.addressof(keys)))
    assert fcntl.ioctl(fd, PR_READ_KEYS, buf) == 0
    gen, n, _ = struct.unpack("=IIQ", buf)
    return gen, list(keys[:min(n, room)])


def pr_state(d, disk="p.img"):
    """generation, (type, key) or None, {initiator: (key, holder)}"""
    gen, res, regs = None, None, {}
    with open(d.path(".ctl/%s/pr" % disk)) as f:
        for line in f.read().splitlines():
            w = line.split()
            if w[0] == "generation":
                gen = int(w[1])
            elif w[0] == "reservation" and w[1] != "none":
                res = (w[1], int(w[3], 16))
            elif w[0] == "registrant":
                regs[w[1]] = (int(w[2], 16), w[-1] == "holder")
    return gen, res, regs


@pytest.fixture
def pr(mount):
    d = mount("--allow-other", "--disk", "p.img=prwrap:mem:16M")
    fds = [Direct(d.path("p.img")) for _ in range(3)]
    yield d, fds
    for f in fds:
        f.close()


def test_pr_conflict_matrix(pr):
    d, (a, b, c) = pr
    for typ, rights in ACCESS.items():
        assert register(a.fd, 0, 0xA) == 0
        assert register(b.fd, 0, 0xB) == 0
        assert reserve(a.fd, 0xA, typ) == 0
        for io, allowed in zip((a, b, c), rights):
            want_r = 0 if "r" in allowed else errno.EBADE
            want_w = 0 if "w" in allowed else errno.EBADE
            assert io.read(0) == want_r, (TYPES[typ], allowed, "read")
            assert io.write(0) == want_w, (TYPES[typ], allowed, "write")
        # the same through .ctl: the holder and the reservation
        gen, res, regs = pr_state(d)
        assert res == (TYPES[typ], 0 if typ >= 5 else 0xA)
        assert sorted(k for k, _ in regs.values()) == [0xA, 0xB]
        holders = sorted(k for k, h in regs.values() if h)
        assert holders == ([0xA, 0xB] if typ >= 5 else [0xA])
        assert read_reservation(a.fd)[2] == typ
        assert clear(b.fd, 0xB) == 0  # any registrant clears
        assert pr_state(d)[1] is None and pr_state(d)[2] == {}
        assert a.read(0) == 0 and c.write(0) == 0


def test_pr_matrix_with_a_named_holder(pr):
    """The holder is a host played through .ctl; the fds are a registrant
    and an outsider."""
    d, (a, b, c) = pr
    for typ, (_, reg_rights, other_rights) in ACCESS.items():
        assert ctl(d, "p.img", "pr", "as hostA register 0 0xa") == (0, "")
        assert register(b.fd, 0, 0xB) == 0
        assert ctl(d, "p.img", "pr", "as hostA reserve 0xa %s" % TYPES[typ]) == (0, "")
        assert read_reservation(b.fd)[2] == typ
        for io, allowed in ((b, reg_rights), (c, other_rights)):
            assert io.read(0) == (0 if "r" in allowed else errno.EBADE)
            assert io.write(0) == (0 if "w" in allowed else errno.EBADE)
        # the fd takes the reservation over from the named host
        assert preempt(b.fd, 0xB, 0 if typ >= 5 else 0xa, typ) == 0
        st = pr_state(d)
        assert "hostA" not in st[2] and st[1][0] == TYPES[typ]
        assert b.write(0) == 0
        assert ctl(d, "p.img", "pr", "as hostA reserve 0xa we")[0] == errno.EBADE
        assert clear(b.fd, 0xB) == 0


def test_pr_results_of_the_ioctls(pr):
    d, (a, b, c) = pr
    assert register(a.fd, 0, 0x1111) == 0
    assert register(a.fd, 0x9999, 0x2222) == CONFLICT  # wrong old key
    assert register(b.fd, 0, 0x2222) == 0
    assert reserve(c.fd, 0x3333, 1) == CONFLICT  # not registered
    assert reserve(a.fd, 0, 1) == CONFLICT  # key 0 is nobody's key
    assert reserve(a.fd, 0x2222, 1) == CONFLICT  # someone else's key
    assert reserve(a.fd, 0x1111, 7) == -errno.EINVAL  # no such type
    assert reserve(a.fd, 0x1111, 0) == -errno.EINVAL
    assert register(a.fd, 0x1111, 0x1112, flags=2) == -errno.EOPNOTSUPP
    assert reserve(a.fd, 0x1111, 1, flags=4) == -errno.EOPNOTSUPP
    assert reserve(a.fd, 0x1111, 1) == 0
    assert reserve(a.fd, 0x1111, 1) == 0  # again, same type
    assert reserve(a.fd, 0x1111, 2) == CONFLICT  # another type
    assert reserve(b.fd, 0x2222, 1) == CONFLICT  # someone else holds it
    assert release(b.fd, 0x2222, 1) == 0  # not the holder: nothing happens
    assert pr_state(d)[1] == ("we", 0x1111)
    # generation: registrations count, reservations do not
    g0 = read_reservation(a.fd)[1]
    assert pr_state(d)[0] == g0
    assert release(a.fd, 0x1111, 1) == 0
    assert reserve(a.fd, 0x1111, 3) == 0
    assert read_reservation(a.fd)[1] == g0
    assert register(a.fd, 0x1111, 0x1234) == 0  # replace the key
    assert read_reservation(a.fd)[1] == g0 + 1
    assert register(c.fd, 0xdead, 0x5555, flags=1) == 0  # ignore the key
    gen, keys = read_keys(b.fd)
    assert gen == g0 + 2 and sorted(keys) == [0x1234, 0x2222, 0x5555]
    # closing an fd keeps its registration
    a_name = [n for n, (k, _) in pr_state(d)[2].items() if k == 0x1234][0]
    assert a_name.startswith("fd-")
    a.close()
    assert pr_state(d)[2][a_name] == (0x1234, True)
    # the rest through .ctl, acting for the closed fd
    assert ctl(d, "p.img", "pr", "as %s release 0x1234 we-ro" % a_name) == (0, "")
    assert ctl(d, "p.img", "pr", "as %s unregister 0x1234" % a_name) == (0, "")
    e, why = ctl(d, "p.img", "pr", "as %s reserve 0x1234 we" % a_name)
    assert e == errno.EBADE and "conflict" in why
    e, why = ctl(d, "p.img", "pr", "reserve 1 wx")
    assert e == errno.EINVAL and "type" in why
    e, why = ctl(d, "p.img", "pr", "as host/a register 0 1")
    assert e == errno.EINVAL and "initiator name" in why
    e, why = ctl(d, "p.img", "pr", "register 0")
    assert e == errno.EINVAL and "usage" in why
    e, why = ctl(d, "p.img", "pr", "reserve 0xzz we")
    assert e == errno.EINVAL and "not a key" in why
    pr_fds = pr[1]
    pr_fds[0] = Direct(d.path("p.img"))  # for the fixture's close


def test_pr_preempt_and_abort(pr):
    d, (a, b, c) = pr
    for abort in (False, True):
        assert register(a.fd, 0, 0xA) == 0
        assert register(b.fd, 0, 0xB) == 0
        assert register(c.fd, 0, 0xC) == 0
        assert reserve(a.fd, 0xA, 2) == 0  # exclusive access
        assert b.read(0) == errno.EBADE
        g = read_reservation(b.fd)[1]
        # victim not the holder: only its registration goes
        assert preempt(b.fd, 0xB, 0xC, 2, abort) == 0
        assert read_reservation(b.fd) == (0xA, g + 1, 2)
        assert sorted(k for k, _ in pr_state(d)[2].values()) == [0xA, 0xB]
        # victim the holder: the preempter holds, with its type
        assert preempt(b.fd, 0xB, 0xA, 1, abort) == 0
        assert read_reservation(b.fd) == (0xB, g + 2, 1)
        assert a.write(0) == errno.EBADE and a.read(0) == 0
        assert b.write(0) == 0
        assert preempt(a.fd, 0xA, 0xB, 1, abort) == CONFLICT  # a is gone
        assert preempt(b.fd, 0xB, 0x777, 1, abort) == CONFLICT  # nobody
        assert clear(b.fd, 0xB) == 0


def test_pr_permissions(pr, tmp_path):
    need("setpriv")
    d, _ = pr
    img = d.path("p.img")
    # the fd is opened here and used by another user: what counts is the
    # open mode and the uid of the ioctl's caller
    script = (
        "import fcntl, struct, sys\n"
        "b = bytearray(struct.pack('=QQII', 0, int(sys.argv[2]), 0, 0))\n"
        "try:\n"
        "    print(fcntl.ioctl(int(sys.argv[1]), %d, b))\n"
        "except OSError as e:\n"
        "    print(-e.errno)\n" % PR_REGISTER)

    def as_user(flags, key):
        fd = os.open(img, flags)
        try:
            p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                "--clear-groups", "/usr/bin/python3", "-c",
                                script, str(fd), str(key)],
                               capture_output=True, text=True, pass_fds=[fd])
        finally:
            os.close(fd)
        assert p.returncode == 0, p.stderr
        return int(p.stdout)

    assert as_user(os.O_RDONLY, 0x66) == -errno.EPERM
    assert as_user(os.O_RDWR, 0x77) == 0
    # root may change reservations through a read-only fd
    fd = os.open(img, os.O_RDONLY)
    try:
        assert register(fd, 0, 0x88) == 0
    finally:
        os.close(fd)
    assert sorted(k for k, _ in pr_state(d)[2].values()) == [0x77, 0x88]


def test_pr_ptpl_survives_a_restart(mount, tmp_path):
    conf = write_config(tmp_path, """
disks = (
  { name = "p.img";
    stack = { type = "pr"; ptpl_file = "p.pr";
              disk = { type = "file"; path = "p.raw"; }; }; }
);
""")
    make_file(tmp_path / "p.raw", 16 * MiB)
    d = mount("-c", conf)
    fd = os.open(d.path("p.img"), os.O_RDWR)
    assert register(fd, 0, 0xfeed) == 0
    assert reserve(fd, 0xfeed, 3) == 0
    os.close(fd)
    assert ctl(d, "p.img", "pr", "as hostB register 0 0xbeef") == (0, "")
    before = pr_state(d)
    d.stop()
    left = [p.name for p in tmp_path.iterdir()
            if "p.pr" in p.name and p.name != "p.pr"]
    assert not left, "temporary files left: %s" % left
    d2 = mount("-c", conf, name="again")
    after = pr_state(d2)
    # the generation starts again at 0, as SPC-4 says for a power on
    assert after[0] == 0 and before[0] == 2
    assert after[1:] == before[1:]
    assert before[1] == ("we-ro", 0xfeed)
    assert before[2]["hostB"] == (0xbeef, False)
    # the old fd initiator is a name now: act for it through .ctl
    old = [n for n, (k, _) in before[2].items() if k == 0xfeed][0]
    assert ctl(d2, "p.img", "pr", "as %s release 0xfeed we-ro" % old) == (0, "")
    assert pr_state(d2)[1] is None


def test_no_reservation_table_is_eopnotsupp(mount):
    d = mount("--disk", "m.img=mem:1M")
    fd = os.open(d.path("m.img"), os.O_RDWR)
    try:
        assert register(fd, 0, 1) == -errno.EOPNOTSUPP
        buf = bytearray(16)
        with pytest.raises(OSError) as e:
            fcntl.ioctl(fd, PR_READ_RESERVATION, buf)
        assert e.value.errno == errno.EOPNOTSUPP
    finally:
        os.close(fd)
    assert not os.path.exists(d.path(".ctl/m.img/pr"))


# ---- stacks of decorators ----

def test_decorator_stacks_pass_fio_verify(mount, tmp_path):
    need("fio")
    base = make_file(tmp_path / "base.raw", 64 * MiB,
                     [(0, os.urandom(MiB))])
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(64))
    key.chmod(0o600)
    before = base.read_bytes()
    conf = write_config(tmp_path, """
disks = (
  { name = "three.img";
    stack = { type = "error"; enabled = false;
              disk = { type = "crypt"; key_file = "k.key";
                       disk = { type = "pr";
                                disk = { type = "layered";
                                         layers = ( { type = "ram"; },
                                                    { type = "file"; path = "base.raw"; } ); }; }; }; }; }
);
""")
    d = mount("-c", conf, "--disk",
              "two.img=delay:1:prwrap:memdiff:%s" % base)
    for name in ("two.img", "three.img"):
        p = run(["fio", "--name=v", "--filename=%s" % d.path(name),
                 "--rw=randwrite", "--bs=4k", "--size=16M",
                 "--ioengine=io_uring", "--iodepth=16", "--direct=1",
                 "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                 "--verify_state_save=0", "--output-format=json"])
        res = json.loads(p.stdout[p.stdout.index("{"):])
        assert res["jobs"][0]["error"] == 0
        assert res["jobs"][0]["read"]["io_bytes"] > 0
    assert base.read_bytes() == before
    with open(d.path(".ctl/three.img/info")) as f:
        info = f.read()
    for kind in ("error", "crypt", "pr", "layered", "ram", "file"):
        assert kind in info
