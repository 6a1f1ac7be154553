"""Control files under .ctl/: contents, the command protocol, errors
with their reasons, and `diskstack ctl`."""

import errno
import os

import pytest

from conftest import make_file

MiB = 1 << 20


@pytest.fixture
def two(mount, tmp_path):
    a = make_file(tmp_path / "a.raw", 16 * MiB)
    b = make_file(tmp_path / "b.raw", 4 * MiB)
    return mount("--disk", f"a.img={a}", "--disk", f"b.img={b},ro")


def read(path):
    with open(path) as f:
        return f.read()


def test_disks_and_info(two):
    assert read(two.path(".ctl/disks")) == (
        "a.img %d rw\nb.img %d ro\n" % (16 * MiB, 4 * MiB))
    info = read(two.path(".ctl/a.img/info"))
    assert "name: a.img\n" in info
    assert "size: %d (16M)\n" % (16 * MiB) in info
    assert "sector-size: 512\n" in info
    assert "read-only: no\n" in info
    assert "stack:\n  file path=" in info
    assert "read-only: yes" in read(two.path(".ctl/b.img/info"))
    assert read(two.path(".ctl/a.img/size")) == "%d\n" % (16 * MiB)


def test_state_is_made_at_open(two):
    """A reader sees the state of its open, however it splits reads."""
    fd = os.open(two.path(".ctl/a.img/size"), os.O_RDONLY)
    try:
        first = os.read(fd, 3)
        with open(two.path(".ctl/a.img/size"), "w") as f:
            f.write("+1M")
        rest = os.read(fd, 100)
        assert (first + rest).decode() == "%d\n" % (16 * MiB)
    finally:
        os.close(fd)
    assert read(two.path(".ctl/a.img/size")) == "%d\n" % (17 * MiB)


def write_cmd(path, cmd):
    """Write one command on an O_RDWR fd; return (errno or 0, what a read
    then returns, what a second read returns)."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            n = os.write(fd, cmd)
            assert n == len(cmd)
            err = 0
        except OSError as e:
            err = e.errno
        return err, os.read(fd, 4096).decode(), os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def test_errors_come_back_on_the_same_fd(two):
    size = two.path(".ctl/a.img/size")
    cases = [
        (b"bogus", errno.EINVAL, "error: EINVAL: 'bogus' is not a size"),
        (b"+1G\n+1G", errno.EINVAL, "error: EINVAL: one command per write"),
        (b"\n", errno.EINVAL, "error: EINVAL: empty command"),
        (b"1M", errno.EPERM, "error: EPERM: "),
        (b"shrink 64M", errno.EINVAL, "error: EINVAL: shrink needs a size below"),
        (b"+100", errno.EINVAL, "error: EINVAL: "),
        (b"shrink 4G extra", errno.EINVAL, "expected SIZE, +SIZE or shrink SIZE"),
        (b'"unterminated', errno.EINVAL, "unterminated double quote"),
    ]
    for cmd, want, text in cases:
        err, first, second = write_cmd(size, cmd)
        assert err == want, cmd
        assert first.startswith("error: E") and text in first, (cmd, first)
        assert first.endswith("\n")
        assert second == "", "the reason is given once, then end of file"
    # nothing changed
    assert read(size) == "%d\n" % (16 * MiB)
    # read-only disk
    err, first, _ = write_cmd(two.path(".ctl/b.img/size"), b"+1M")
    assert err == errno.EROFS and first.startswith("error: EROFS: ")
    # files that take no commands cannot be opened for writing
    for p in (".ctl/disks", ".ctl/a.img/info"):
        with pytest.raises(OSError) as e:
            os.open(two.path(p), os.O_WRONLY)
        assert e.value.errno == errno.EACCES


def test_success_returns_the_full_length(two):
    fd = os.open(two.path(".ctl/a.img/size"), os.O_WRONLY)
    try:
        assert os.write(fd, b"+1M\n") == 4
        assert os.write(fd, b"shrink 16M") == 10
    finally:
        os.close(fd)
    assert os.stat(two.path("a.img")).st_size == 16 * MiB


def test_diskstack_ctl(two, diskstack):
    mnt = two.mountpoint
    p = diskstack("ctl", mnt, "a.img", "size", "+2M", check=0)
    assert p.stdout == "" and p.stderr == ""
    assert os.stat(two.path("a.img")).st_size == 18 * MiB
    p = diskstack("ctl", mnt, "a.img", "size", check=0)
    assert p.stdout == "%d\n" % (18 * MiB)
    p = diskstack("ctl", mnt, "-", "disks", check=0)
    assert p.stdout.startswith("a.img %d rw\n" % (18 * MiB))
    p = diskstack("ctl", mnt, "a.img", "size", "shrink", "99G", check=1)
    assert "error: EINVAL: shrink needs a size below" in p.stderr
    p = diskstack("ctl", mnt, "a.img", "size", "nonsense", check=1)
    assert "error: EINVAL: 'nonsense' is not a size" in p.stderr
    p = diskstack("ctl", mnt, "nosuch.img", "size", "+1M", check=1)
    assert "No such file" in p.stderr
    p = diskstack("ctl", two.mountpoint.parent, "a.img", "size", check=1)
    assert "not mounted" in p.stderr
    # the warning is logged once by the daemon
    assert two.stderr().count("'nonsense' is not a size") == 1
