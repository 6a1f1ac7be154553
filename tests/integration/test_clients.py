"""Real clients on the image files: fio --verify, qemu-io with many
concurrent O_DIRECT writes, two processes patching the same sectors,
cp --sparse, du, qemu-img map and compare, fallocate, lseek and ioctls."""

import errno
import fcntl
import json
import multiprocessing
import os
import struct

import pytest

from conftest import make_file, run, need

MiB = 1 << 20
GiB = 1 << 30


FIO_CASES = [
    # (name, fio arguments)
    ("uring-qd1-direct", ["--ioengine=io_uring", "--iodepth=1", "--direct=1"]),
    ("uring-qd32-direct", ["--ioengine=io_uring", "--iodepth=32", "--direct=1"]),
    ("uring-qd32-buffered", ["--ioengine=io_uring", "--iodepth=32", "--direct=0"]),
    ("psync-1job", ["--ioengine=psync", "--direct=1"]),
    ("psync-8jobs", ["--ioengine=psync", "--direct=0", "--numjobs=8",
                     "--offset_increment=4M"]),
]


@pytest.mark.parametrize("backend", ["buffered", "direct"])
@pytest.mark.parametrize("name,args", FIO_CASES, ids=[c[0] for c in FIO_CASES])
def test_fio_verify(mount, tmp_path, backend, name, args):
    need("fio")
    need("qemu-img")
    backing = make_file(tmp_path / "disk.raw", 64 * MiB)
    spec = "file:%s%s" % (backing, ";direct" if backend == "direct" else "")
    d = mount("--disk", "disk.img=" + spec)
    size = "4M" if "--numjobs=8" in args else "32M"
    p = run(["fio", "--name=verify", "--filename=%s" % d.path("disk.img"),
             "--rw=randwrite", "--bs=4k", "--size=" + size,
             "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
             "--randrepeat=0", "--norandommap=0", "--group_reporting",
             "--verify_state_save=0",
             "--output-format=json"] + args)
    res = json.loads(p.stdout[p.stdout.index("{"):])
    for job in res["jobs"]:
        assert job["error"] == 0
        assert job["write"]["io_bytes"] > 0 and job["read"]["io_bytes"] > 0
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw",
         d.path("disk.img"), backing])


def test_qemu_io_parallel_aio_writes(mount, tmp_path):
    """32 concurrent O_DIRECT writes of distinct patterns: none may land
    in another's place (the writes must never share buffers)."""
    need("qemu-io")
    backing = make_file(tmp_path / "disk.raw", 64 * MiB)
    d = mount("--disk", "disk.img=%s" % backing)
    for engine in ("io_uring", "native", "threads"):
        w, r = [], []
        for j in range(32):
            w += ["-c", "aio_write -P %d %dM 2M" % (j + 1 + (engine == "native") * 40,
                                                    j * 2)]
            r += ["-c", "read -P %d %dM 2M" % (j + 1 + (engine == "native") * 40,
                                               j * 2)]
        run(["qemu-io", "-n", "-i", engine, "-f", "raw", *w, "-c", "aio_flush",
             d.path("disk.img")])
        p = run(["qemu-io", "-r", "-f", "raw", *r, backing])
        assert "Pattern verification failed" not in p.stdout + p.stderr, engine


def _patcher(path, start, rounds, sectors, barrier, result):
    fd = os.open(path, os.O_RDWR)
    try:
        for i in range(1, rounds + 1):
            data = bytes([i & 0xff]) * 100
            barrier.wait()
            for s in range(sectors):
                os.pwrite(fd, data, s * 512 + start)
            barrier.wait()
            if start == 0:
                for s in range(sectors):
                    sec = os.pread(fd, 512, s * 512)
                    if sec[0:100] != data or sec[200:300] != data:
                        result.value = i
                        barrier.abort()
                        return
    finally:
        os.close(fd)


def test_torn_sectors_two_processes(mount, tmp_path):
    """Two processes write bytes 0-99 and 200-299 of the same sectors,
    in rounds that start together; after every round both processes'
    bytes must be in every sector — a lost update is a failure."""
    backing = make_file(tmp_path / "disk.raw", MiB)
    d = mount("--disk", "disk.img=%s" % backing)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2, timeout=60)
    result = ctx.Value("i", 0)
    procs = [ctx.Process(target=_patcher,
                         args=(str(d.path("disk.img")), start, 150, 32,
                               barrier, result))
             for start in (0, 200)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert result.value == 0, "round %d lost an update" % result.value
    data = backing.read_bytes()
    for s in range(32):
        sec = data[s * 512:(s + 1) * 512]
        assert sec[0:100] == bytes([150]) * 100
        assert sec[100:200] == bytes(100)
        assert sec[200:300] == bytes([150]) * 100


def qemu_map(path):
    p = run(["qemu-img", "map", "--output=json", "-f", "raw", path])
    return [(e["start"], e["length"]) for e in json.loads(p.stdout) if e["data"]]


def test_sparse_copy_du_and_map(mount, tmp_path):
    need("qemu-img")
    chunks = [(0, 64 * 1024), (100 * MiB, MiB), (GiB - 4096, 4096)]
    backing = make_file(tmp_path / "big.raw", GiB,
                        [(off, os.urandom(n)) for off, n in chunks])
    d = mount("--disk", "big.img=%s" % backing)
    img = d.path("big.img")
    st = os.stat(img)
    assert st.st_size == GiB
    assert st.st_blocks * 512 == os.stat(backing).st_blocks * 512
    du = run(["du", "-B1", img]).stdout.split()[0]
    assert int(du) == os.stat(backing).st_blocks * 512
    assert qemu_map(img) == chunks
    out = tmp_path / "copy.raw"
    run(["cp", "--sparse=auto", img, out])
    assert os.stat(out).st_size == GiB
    assert os.stat(out).st_blocks * 512 < 8 * MiB, "the copy is sparse"
    run(["cmp", img, out])
    # SEEK_DATA / SEEK_HOLE
    fd = os.open(img, os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 64 * 1024
        assert os.lseek(fd, 64 * 1024, os.SEEK_DATA) == 100 * MiB
        assert os.lseek(fd, 100 * MiB + 7, os.SEEK_DATA) == 100 * MiB + 7
        assert os.lseek(fd, 101 * MiB, os.SEEK_HOLE) == 101 * MiB
        assert os.lseek(fd, GiB - 100, os.SEEK_HOLE) == GiB
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            for off in (GiB, GiB + 1, 2 * GiB):
                with pytest.raises(OSError) as e:
                    os.lseek(fd, off, whence)
                assert e.value.errno == errno.ENXIO
    finally:
        os.close(fd)


def test_fallocate(mount, tmp_path):
    need("qemu-img")
    size = 64 * MiB
    backing = make_file(tmp_path / "disk.raw", size,
                        [(0, os.urandom(16 * MiB))])
    d = mount("--disk", "disk.img=%s" % backing)
    img = str(d.path("disk.img"))
    before = os.stat(backing).st_blocks
    # punch-hole frees space in the backing file and reads back zeroes
    run(["fallocate", "-p", "-o", str(4 * MiB), "-l", str(4 * MiB), img])
    assert os.stat(backing).st_blocks * 512 <= before * 512 - 4 * MiB
    with open(img, "rb") as f:
        f.seek(4 * MiB)
        assert f.read(4 * MiB) == bytes(4 * MiB)
    assert qemu_map(img) == [(0, 4 * MiB), (8 * MiB, 8 * MiB)]
    # unaligned punch: the partial sectors are zeroed, the rest stays
    with open(img, "rb") as f:
        old = f.read(16 * MiB)
    run(["fallocate", "-p", "-o", "1000", "-l", "5000", img])
    with open(img, "rb") as f:
        new = f.read(16 * MiB)
    assert new[:1000] == old[:1000]
    assert new[1000:6000] == bytes(5000)
    assert new[6000:] == old[6000:]
    # punch at or past the end succeeds and does nothing
    run(["fallocate", "-p", "-o", str(size), "-l", str(MiB), img])
    run(["fallocate", "-p", "-o", str(size - 512), "-l", str(MiB), img])
    # zero range, also across the end
    run(["fallocate", "-z", "-o", str(12 * MiB), "-l", str(MiB), img])
    with open(img, "rb") as f:
        f.seek(12 * MiB)
        assert f.read(MiB) == bytes(MiB)
    run(["fallocate", "-z", "-o", str(size - 4096), "-l", str(MiB), img])
    run(["fallocate", "-z", "-n", "-o", str(size), "-l", str(MiB), img])
    p = run(["fallocate", "-z", "-o", str(size), "-l", str(MiB), img], check=False)
    assert p.returncode != 0 and "No space left" in p.stderr
    # mode 0: inside the size succeeds, past the end is ENOSPC
    run(["fallocate", "-o", str(MiB), "-l", str(MiB), img])
    p = run(["fallocate", "-o", str(size - 4096), "-l", str(MiB), img], check=False)
    assert p.returncode != 0 and "No space left" in p.stderr
    run(["fallocate", "-n", "-o", str(size - 4096), "-l", str(MiB), img])
    # other modes are not supported
    p = run(["fallocate", "-c", "-o", "0", "-l", str(MiB), img], check=False)
    assert p.returncode != 0
    assert os.stat(img).st_size == size and os.path.getsize(backing) == size
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img, backing])


BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
XFS_IOC_DIOINFO = 0x800c581e
IOC_PR_REGISTER = 0x401870c8
FS_IOC_GETVERSION = 0x80087601


@pytest.mark.parametrize("sector", [512, 4096])
def test_ioctls(mount, tmp_path, sector):
    backing = make_file(tmp_path / "disk.raw", 8 * MiB)
    d = mount("--disk", "disk.img=file:%s;sector=%d" % (backing, sector))
    fd = os.open(d.path("disk.img"), os.O_RDWR)
    try:
        buf = bytearray(8)
        assert fcntl.ioctl(fd, BLKGETSIZE64, buf) == 0
        assert struct.unpack("=Q", buf)[0] == 8 * MiB
        buf = bytearray(12)
        fcntl.ioctl(fd, XFS_IOC_DIOINFO, buf)
        mem, miniosz, maxiosz = struct.unpack("=III", buf)
        assert miniosz == sector and mem > 0 and maxiosz >= miniosz
        for cmd, arg, want in ((BLKSSZGET, 0, errno.ENOTTY),
                               (FS_IOC_GETVERSION, bytearray(8), errno.ENOTTY),
                               (IOC_PR_REGISTER, bytearray(24), errno.EOPNOTSUPP)):
            with pytest.raises(OSError) as e:
                fcntl.ioctl(fd, cmd, arg)
            assert e.value.errno == want, hex(cmd)
    finally:
        os.close(fd)


def test_qemu_cache_none_uses_the_sector_size(mount, tmp_path):
    """With XFS_IOC_DIOINFO answered, QEMU cache=none writes 512 bytes
    as 512 bytes, not as a 4 KiB read-modify-write."""
    need("qemu-io")
    backing = make_file(tmp_path / "disk.raw", 8 * MiB)
    d = mount("--disk", "disk.img=%s" % backing, "-D", "file=2")
    run(["qemu-io", "-n", "-f", "raw", "-c", "write -P 0x55 512 512",
         d.path("disk.img")])
    d.stop()
    trace = [line for line in d.stderr().splitlines() if "[file]" in line]
    assert any("write off=512 len=512 " in line for line in trace), trace
    assert not any("write off=0 len=4096" in line for line in trace), trace
    with open(backing, "rb") as f:
        f.seek(512)
        assert f.read(512) == b"\x55" * 512
