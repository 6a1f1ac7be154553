"""Resizing: truncate and .ctl/NAME/size grow a disk and every fd sees it
at once; shrinking needs `shrink`; nothing that opens an image with
O_TRUNC (cp, dd, >) changes its size, even under an O_DIRECT reader."""

import errno
import json
import os
import shutil
import subprocess
import threading

import pytest

from conftest import make_file, run

MiB = 1 << 20


def test_truncate_grows_and_open_fds_see_it(mount, tmp_path):
    backing = make_file(tmp_path / "disk.raw", 16 * MiB,
                        [(16 * MiB - 4, b"tail")])
    d = mount("--disk", "disk.img=%s" % backing)
    img = d.path("disk.img")
    fd = os.open(img, os.O_RDWR)
    try:
        assert os.fstat(fd).st_size == 16 * MiB
        run(["truncate", "-s", str(32 * MiB), img])
        assert os.fstat(fd).st_size == 32 * MiB, "an fd opened before sees it"
        assert os.stat(img).st_size == 32 * MiB
        assert os.path.getsize(backing) == 32 * MiB
        assert os.pread(fd, 4, 16 * MiB - 4) == b"tail"
        assert os.pread(fd, MiB, 31 * MiB) == bytes(MiB), "grown space is zero"
        assert os.pwrite(fd, b"new", 32 * MiB - 3) == 3
        os.ftruncate(fd, 40 * MiB)  # ftruncate grows too
        assert os.fstat(fd).st_size == 40 * MiB
        # smaller: EPERM, nothing changes
        for call in (lambda: os.truncate(img, 8 * MiB),
                     lambda: os.ftruncate(fd, 8 * MiB),
                     lambda: os.ftruncate(fd, 0)):
            with pytest.raises(OSError) as e:
                call()
            assert e.value.errno == errno.EPERM
        p = run(["truncate", "-s", str(MiB), img], check=False)
        assert p.returncode != 0 and "Operation not permitted" in p.stderr
        with pytest.raises(OSError) as e:
            os.ftruncate(fd, 40 * MiB + 100)
        assert e.value.errno == errno.EINVAL, "not a whole sector"
        assert os.fstat(fd).st_size == 40 * MiB
        assert os.path.getsize(backing) == 40 * MiB
    finally:
        os.close(fd)


def ctl(d, cmd):
    with open(d.path(".ctl/disk.img/size"), "w") as f:
        f.write(cmd)


def test_ctl_size_grow_and_shrink(mount, tmp_path):
    backing = make_file(tmp_path / "disk.raw", 16 * MiB,
                        [(MiB, b"keep"), (12 * MiB, b"drop")])
    d = mount("--disk", "disk.img=%s" % backing)
    img = d.path("disk.img")
    fd = os.open(img, os.O_RDONLY)
    try:
        ctl(d, "32M")
        assert os.fstat(fd).st_size == 32 * MiB
        ctl(d, "+8M")
        assert os.fstat(fd).st_size == 40 * MiB
        assert os.stat(img).st_size == 40 * MiB
        ctl(d, "40M")  # the same size: nothing to do
        with pytest.raises(OSError) as e:
            ctl(d, "20M")
        assert e.value.errno == errno.EPERM
        ctl(d, "shrink 8M")
        assert os.fstat(fd).st_size == 8 * MiB
        assert os.path.getsize(backing) == 8 * MiB
        ctl(d, "16M")
        assert os.pread(fd, 4, MiB) == b"keep"
        assert os.pread(fd, 4, 12 * MiB) == bytes(4), "shrink dropped the data"
    finally:
        os.close(fd)


def test_o_trunc_writers_keep_the_size(mount, tmp_path):
    size = 16 * MiB
    backing = make_file(tmp_path / "disk.raw", size, [(8 * MiB, b"middle")])
    src = make_file(tmp_path / "src.raw", size, [(0, b"from cp")])
    small = tmp_path / "small.raw"
    small.write_bytes(b"from dd" + bytes(4096 - 7))
    d = mount("--disk", "disk.img=%s" % backing)
    img = d.path("disk.img")
    run(["cp", src, img])
    assert os.stat(img).st_size == size
    with open(img, "rb") as f:
        assert f.read(7) == b"from cp"
    run(["dd", "if=%s" % small, "of=%s" % img, "bs=4096", "status=none"])
    assert os.stat(img).st_size == size
    with open(img, "rb") as f:
        assert f.read(7) == b"from dd"
    run(["sh", "-c", "printf 'from sh' > '%s'" % img])
    assert os.stat(img).st_size == size
    with open(img, "rb") as f:
        assert f.read(7) == b"from sh"
    assert os.path.getsize(backing) == size


def test_o_trunc_under_an_o_direct_reader(mount, tmp_path):
    """An io_uring O_DIRECT reader running while `: > image` happens never
    gets a short or a zeroed read."""
    if not shutil.which("fio"):
        pytest.skip("fio is not installed (tests/install-deps test)")
    size = 32 * MiB
    backing = make_file(tmp_path / "disk.raw", size)
    d = mount("--disk", "disk.img=%s" % backing)
    img = str(d.path("disk.img"))
    common = ["--name=t", "--filename=" + img, "--bs=64k", "--size=%d" % size,
              "--verify=crc32c", "--ioengine=io_uring", "--direct=1",
              "--iodepth=16", "--output-format=json", "--verify_state_save=0"]
    run(["fio", "--rw=write", "--do_verify=0"] + common)
    stop = threading.Event()
    truncs = [0]

    def truncate_loop():
        while not stop.is_set():
            fd = os.open(img, os.O_WRONLY | os.O_TRUNC)
            os.close(fd)
            subprocess.run(["sh", "-c", ": > '%s'" % img], check=True)
            truncs[0] += 1

    t = threading.Thread(target=truncate_loop)
    t.start()
    try:
        for _ in range(10):
            p = run(["fio", "--rw=read", "--verify_only=1", "--verify_fatal=1"]
                    + common, check=False)
            assert p.returncode == 0, p.stdout + p.stderr
            job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
            assert job["error"] == 0
            assert job["read"]["io_bytes"] == size, "no read was short"
    finally:
        stop.set()
        t.join()
    assert truncs[0] > 10
    assert os.stat(img).st_size == size
