"""The mount and its image files: the rules of DESIGN §3, driven with
plain system calls and standard tools."""

import errno
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import Daemon, make_file, mounted, run

MiB = 1 << 20


@pytest.fixture
def backing(tmp_path):
    return make_file(tmp_path / "disk.raw", 64 * MiB)


def test_tree_and_attributes(mount, backing, tmp_path):
    ro = make_file(tmp_path / "ro.raw", 8 * MiB)
    d = mount("--disk", f"disk.img={backing}", "--disk", f"ro.img={ro},ro")
    assert sorted(os.listdir(d.mountpoint)) == [".ctl", "disk.img", "ro.img"]
    assert sorted(os.listdir(d.path(".ctl"))) == ["disk.img", "disks", "ro.img"]
    assert sorted(os.listdir(d.path(".ctl/disk.img"))) == ["info", "size"]
    st = os.stat(d.path("disk.img"))
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 64 * MiB
    assert st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d.path("ro.img")).st_mode) == 0o400
    assert st.st_blksize == os.stat(backing).st_blksize or st.st_blksize == 4096
    ctl = os.stat(d.path(".ctl"))
    assert stat.S_ISDIR(ctl.st_mode) and stat.S_IMODE(ctl.st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d.path(".ctl/disk.img/size")).st_mode) == 0o600
    assert os.stat(d.path(".ctl/disks")).st_size == 0
    # chmod and chown are kept in memory
    os.chmod(d.path("disk.img"), 0o640)
    assert stat.S_IMODE(os.stat(d.path("disk.img")).st_mode) == 0o640


def test_root_entries_are_fixed(mount, backing):
    d = mount("--disk", f"disk.img={backing}")
    for fn, args in ((os.open, (d.path("new.img"), os.O_CREAT | os.O_WRONLY)),
                     (os.mkdir, (d.path("dir"),)),
                     (os.unlink, (d.path("disk.img"),)),
                     (os.rename, (d.path("disk.img"), d.path("other.img"))),
                     (os.symlink, ("disk.img", d.path("link"))),
                     (os.link, (d.path("disk.img"), d.path("hard")))):
        with pytest.raises(OSError) as e:
            fn(*args)
        assert e.value.errno == errno.EPERM, fn
    assert os.path.exists(d.path("disk.img"))


def test_read_write_any_offset(mount, backing):
    d = mount("--disk", f"disk.img={backing}")
    fd = os.open(d.path("disk.img"), os.O_RDWR)
    try:
        pieces = [(0, b"A" * 10), (13, b"bcd"), (511, b"XY"), (4095, b"Z" * 4098),
                  (1234567, os.urandom(100000)), (64 * MiB - 1, b"E")]
        for off, data in pieces:
            assert os.pwrite(fd, data, off) == len(data)
        for off, data in pieces:
            assert os.pread(fd, len(data), off) == data
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(backing, "rb") as f:
        for off, data in pieces:
            f.seek(off)
            assert f.read(len(data)) == data


def test_end_of_disk(mount, backing):
    d = mount("--disk", f"disk.img={backing}")
    size = 64 * MiB
    fd = os.open(d.path("disk.img"), os.O_RDWR)
    try:
        assert os.pread(fd, 100, size) == b""
        assert os.pread(fd, 100, size + 12345) == b""
        assert len(os.pread(fd, 1000, size - 100)) == 100
        assert os.pwrite(fd, b"x" * 1000, size - 300) == 300
        for off in (size, size + 1, size + MiB):
            with pytest.raises(OSError) as e:
                os.pwrite(fd, b"y", off)
            assert e.value.errno == errno.ENOSPC
        assert os.fstat(fd).st_size == size
    finally:
        os.close(fd)
    assert os.path.getsize(backing) == size


def test_read_only_disk(mount, tmp_path):
    ro = make_file(tmp_path / "ro.raw", 8 * MiB, [(0, b"keep")])
    d = mount("--disk", f"ro.img={ro},ro")
    for flags in (os.O_RDWR, os.O_WRONLY):
        with pytest.raises(OSError) as e:
            os.open(d.path("ro.img"), flags)
        assert e.value.errno == errno.EROFS
    with open(d.path("ro.img"), "rb") as f:
        assert f.read(4) == b"keep"


def test_open_trunc_keeps_the_disk(mount, backing):
    with open(backing, "r+b") as f:
        f.write(b"precious")
    d = mount("--disk", f"disk.img={backing}")
    fd = os.open(d.path("disk.img"), os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    subprocess.run(["sh", "-c", ": > '%s'" % d.path("disk.img")], check=True)
    os.truncate(d.path("disk.img"), 0)  # truncate(2) by path to 0: a no-op
    assert os.stat(d.path("disk.img")).st_size == 64 * MiB
    with open(d.path("disk.img"), "rb") as f:
        assert f.read(8) == b"precious"


def test_stop_signals_and_fusermount(tmp_path, backing):
    for how in ("TERM", "INT", "fusermount"):
        d = Daemon(tmp_path, ["--disk", f"disk.img={backing}"], name="m" + how)
        d.start()
        with open(d.path("disk.img"), "r+b") as f:
            f.write(how.encode())
        if how == "fusermount":
            run(["fusermount3", "-u", d.mountpoint])
            rc = d.proc.wait(timeout=30)
            d.proc = None
            d.log.close()
            assert rc == 0, d.stderr()
            assert mounted(d.mountpoint) is None
        else:
            d.stop(sig=getattr(signal, "SIG" + how))
        assert "every disk flushed" in d.stderr()
        with open(backing, "rb") as f:
            assert f.read(len(how)) == how.encode()


def test_background_daemon(diskstack, tmp_path, backing):
    mnt = tmp_path / "bg"
    mnt.mkdir()
    p = diskstack("mount", "--disk", f"disk.img={backing}", mnt, check=0)
    try:
        assert mounted(mnt) == "fuse.diskstack"
        assert os.stat(mnt / "disk.img").st_size == 64 * MiB
    finally:
        run(["fusermount3", "-u", mnt])
    for _ in range(100):
        if mounted(mnt) is None:
            break
        time.sleep(0.05)
    assert mounted(mnt) is None
    assert p.stderr == ""


def test_kill9_then_mount_again(tmp_path, backing):
    for attempt in range(3):
        d = Daemon(tmp_path, ["--disk", f"disk.img={backing}"])
        d.start()
        with open(d.path("disk.img"), "r+b") as f:
            f.write(b"round %d" % attempt)
        d.kill9()
        d2 = Daemon(tmp_path, ["--disk", f"disk.img={backing}"])
        try:
            d2.start()
            assert os.stat(d2.path("disk.img")).st_size == 64 * MiB
            with open(d2.path("disk.img"), "rb") as f:
                assert f.read(7) == b"round %d" % attempt
        except BaseException:
            d2.abandon()
            raise
        d2.stop()


def test_mountpoint_checks(diskstack, tmp_path, backing, mount):
    p = diskstack("mount", "-f", "--disk", f"disk.img={backing}",
                  tmp_path / "missing", check=1)
    assert "missing" in p.stderr
    d = mount("--disk", f"disk.img={backing}")
    p = diskstack("mount", "-f", "--disk", f"disk.img={backing}",
                  d.mountpoint, check=1)
    assert "mount point already" in p.stderr
    assert mounted(d.mountpoint) == "fuse.diskstack"


def test_usage(diskstack):
    for cmd in ((), ("bogus",), ("mount",), ("mount", "/tmp"),
                ("check",), ("info",), ("ctl", "/tmp")):
        p = diskstack(*cmd)
        assert p.returncode == 2, cmd
        assert "Usage" in p.stderr
    for cmd in (("--help",), ("mount", "--help"), ("check", "--help"),
                ("info", "--help"), ("ctl", "--help")):
        p = diskstack(*cmd, check=0)
        assert "Usage: diskstack" in p.stdout
        assert "Exit codes" in p.stdout
    assert diskstack("--version", check=0).stdout.startswith("diskstack ")
