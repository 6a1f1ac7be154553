"""Layered stacks through the mount: memdiff over a file, snapshots,
commit and revert while the image is in use, layer views, allocation
through layers, and the refusals."""

import errno
import hashlib
import json
import os

import pytest

from conftest import make_file, run, need, ctl

MiB = 1 << 20


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def layers(d, disk="d.img"):
    with open(d.path(".ctl/%s/layers" % disk)) as f:
        return [line.split() for line in f.read().splitlines()]


@pytest.fixture
def base(tmp_path):
    return make_file(tmp_path / "base.raw", 64 * MiB,
                     [(0, os.urandom(2 * MiB)), (32 * MiB, os.urandom(MiB))])


def test_memdiff_leaves_the_base_untouched(mount, base):
    need("fio")
    before = sha(base)
    d = mount("--disk", "d.img=memdiff:%s" % base)
    img = d.path("d.img")
    run(["fio", "--name=v", "--filename=%s" % img, "--rw=randwrite", "--bs=4k",
         "--size=16M", "--offset=1M", "--ioengine=io_uring", "--iodepth=32",
         "--direct=1", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
         "--verify_state_save=0"])
    run(["dd", "if=/dev/urandom", "of=%s" % img, "bs=1M", "count=2",
         "seek=40", "conv=notrunc", "status=none"])
    assert sha(img) != before, "the image changed"
    assert sha(base) == before, "the base file is byte-identical"
    rows = layers(d)
    assert [r[0] for r in rows] == ["1", "0"]
    assert rows[0][1] == "ram" and rows[1][1] == "file"
    assert rows[1][-1] == "ro", "the base is read-only below the top"
    assert int(rows[0][3]) >= 2 * MiB
    d.stop()
    assert sha(base) == before


def test_allocation_through_layers(mount, base, diskstack):
    need("qemu-img")
    d = mount("--disk", "d.img=memdiff:%s" % base)
    img = d.path("d.img")
    with open(img, "r+b") as f:
        f.seek(10 * MiB)
        f.write(b"x" * 4096)
    st = os.stat(img)
    assert st.st_blocks * 512 == 3 * MiB + 4096, "st_blocks counts every layer"
    fd = os.open(img, os.O_RDONLY)
    try:
        assert os.lseek(fd, 2 * MiB, os.SEEK_DATA) == 10 * MiB
        assert os.lseek(fd, 10 * MiB, os.SEEK_HOLE) == 10 * MiB + 4096
        assert os.lseek(fd, 11 * MiB, os.SEEK_DATA) == 32 * MiB
    finally:
        os.close(fd)
    p = run(["qemu-img", "map", "--output=json", "-f", "raw", img])
    data = [(e["start"], e["length"]) for e in json.loads(p.stdout) if e["data"]]
    assert data == [(0, 2 * MiB), (10 * MiB, 4096), (32 * MiB, MiB)]
    info = open(d.path(".ctl/d.img/info")).read()
    assert "layered" in info and "ram" in info and "file" in info
    p = diskstack("info", "memdiff:%s" % base, check=0)
    assert "allocated: %d " % (3 * MiB) in p.stdout
    assert "layered" in p.stdout


def test_snapshot_write_revert(mount, base, tmp_path):
    need("qemu-img")
    d = mount("--disk", "d.img=memdiff:%s" % base)
    img = d.path("d.img")
    with open(img, "r+b") as f:
        f.write(b"before the snapshot")
    saved = tmp_path / "saved.raw"
    run(["cp", "--sparse=always", img, saved])
    fd = os.open(img, os.O_RDWR)  # in use across the snapshot
    try:
        assert ctl(d, "d.img", "snapshot", "snapshot") == (0, "")
        assert [r[0] for r in layers(d)] == ["2", "1", "0"]
        assert layers(d)[1][-1] == "ro,frozen"
        os.pwrite(fd, os.urandom(MiB), 5 * MiB)
        os.pwrite(fd, b"after", 0)
        assert run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img,
                    saved], check=False).returncode == 1
        assert ctl(d, "d.img", "snapshot", "revert") == (0, "")
        assert os.pread(fd, 19, 0) == b"before the snapshot"
    finally:
        os.close(fd)
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img, saved])
    assert [r[0] for r in layers(d)] == ["1", "0"]
    assert layers(d)[0][-1] == "rw", "the old top is writable again"


def test_snapshot_write_commit_equals_no_snapshot(mount, base, tmp_path):
    need("qemu-img")
    writes = [(off * 4096, os.urandom(4096 * (1 + off % 5)))
              for off in range(0, 4000, 37)]
    a = mount("--disk", "d.img=memdiff:%s" % base, name="a")
    b = mount("--disk", "d.img=memdiff:%s" % base, name="b")
    with open(a.path("d.img"), "r+b") as f:
        for off, buf in writes[:40]:
            f.seek(off)
            f.write(buf)
    assert ctl(a, "d.img", "snapshot", "snapshot") == (0, "")
    with open(a.path("d.img"), "r+b") as f:
        for off, buf in writes[40:80]:
            f.seek(off)
            f.write(buf)
    assert ctl(a, "d.img", "snapshot", "snapshot") == (0, "")
    with open(a.path("d.img"), "r+b") as f:
        for off, buf in writes[80:]:
            f.seek(off)
            f.write(buf)
    run(["fallocate", "-p", "-o", str(MiB), "-l", str(64 * 1024), a.path("d.img")])
    assert ctl(a, "d.img", "snapshot", "commit") == (0, "")
    assert ctl(a, "d.img", "snapshot", "commit") == (0, "")
    with open(b.path("d.img"), "r+b") as f:
        for off, buf in writes:
            f.seek(off)
            f.write(buf)
    run(["fallocate", "-p", "-o", str(MiB), "-l", str(64 * 1024), b.path("d.img")])
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", a.path("d.img"),
         b.path("d.img")])
    assert [r[0] for r in layers(a)] == ["1", "0"]


def test_layer_views_show_exactly_what_each_layer_holds(mount, base):
    need("qemu-img")
    d = mount("--disk", "d.img=memdiff:%s" % base)
    img = d.path("d.img")
    with open(img, "r+b") as f:
        f.seek(4 * MiB)
        f.write(b"a" * 8192)
    assert ctl(d, "d.img", "snapshot", "snapshot") == (0, "")
    with open(img, "r+b") as f:
        f.seek(6 * MiB)
        f.write(b"b" * 4096)
    assert sorted(os.listdir(d.path(".ctl/d.img/layer"))) == ["0", "1", "2"]

    def extents(n):
        p = run(["qemu-img", "map", "--output=json", "-f", "raw",
                 d.path(".ctl/d.img/layer/%d" % n)])
        return [(e["start"], e["length"]) for e in json.loads(p.stdout)
                if e["data"]]

    assert extents(2) == [(6 * MiB, 4096)]
    assert extents(1) == [(4 * MiB, 8192)]
    assert extents(0) == [(0, 2 * MiB), (32 * MiB, MiB)]
    st = os.stat(d.path(".ctl/d.img/layer/1"))
    assert st.st_size == 64 * MiB and st.st_blocks * 512 == 8192
    with open(d.path(".ctl/d.img/layer/1"), "rb") as f:
        f.seek(4 * MiB)
        assert f.read(8192) == b"a" * 8192
        f.seek(0)
        assert f.read(4096) == bytes(4096), "holes elsewhere"
    with pytest.raises(OSError) as e:
        os.open(d.path(".ctl/d.img/layer/1"), os.O_RDWR)
    assert e.value.errno == errno.EROFS
    # a view in use keeps its layer: revert waits for it to close
    fd = os.open(d.path(".ctl/d.img/layer/2"), os.O_RDONLY)
    try:
        err, why = ctl(d, "d.img", "snapshot", "revert")
        assert err == errno.EBUSY and "layer 2" in why
    finally:
        os.close(fd)
    assert ctl(d, "d.img", "snapshot", "revert") == (0, "")
    assert sorted(os.listdir(d.path(".ctl/d.img/layer"))) == ["0", "1"]
    assert not os.path.exists(d.path(".ctl/d.img/layer/2"))


def test_refusals(mount, base, diskstack, tmp_path):
    d = mount("--disk", "d.img=memdiff:%s" % base, "--disk",
              "plain.img=%s" % make_file(tmp_path / "plain.raw", MiB))
    err, why = ctl(d, "d.img", "snapshot", "revert")
    assert err == errno.EINVAL and "part of the configuration" in why
    err, why = ctl(d, "d.img", "snapshot", "commit")
    assert err == errno.EINVAL
    err, why = ctl(d, "d.img", "snapshot", "snapshot sql:%s/p.db;create" % tmp_path)
    assert err == errno.EINVAL and "--state" in why
    assert not (tmp_path / "p.db").exists()
    err, why = ctl(d, "d.img", "snapshot", "snapshot floppy")
    assert err == errno.EINVAL
    err, why = ctl(d, "d.img", "snapshot", "bogus")
    assert err == errno.EINVAL and "expected snapshot" in why
    assert not os.path.exists(d.path(".ctl/plain.img/snapshot")), \
        "a stack without layers has no snapshot file"
    assert [r[0] for r in layers(d)] == ["1", "0"]
    # configurations that must be refused, naming the layer
    bad = tmp_path / "bad.conf"
    bad.write_text('disks = ( { name = "x.img"; stack = { type = "layered"; '
                   'layers = ( { type = "ram"; read_only = true; }, '
                   '{ type = "file"; path = "%s"; } ); }; } );\n' % base)
    p = diskstack("check", "-c", bad, check=2)
    assert "layer 1 (ram" in p.stderr and "write path" in p.stderr
    bad.write_text('disks = ( { name = "x.img"; stack = { type = "layered"; '
                   'layers = ( { type = "ram"; sector = 4096; }, '
                   '{ type = "file"; path = "%s"; } ); }; } );\n' % base)
    p = diskstack("check", "-c", bad, check=2)
    assert "sector size 4096 differs from 512" in p.stderr
    bad.write_text('disks = ( { name = "x.img"; stack = { type = "layered"; '
                   'layers = ( { type = "ram"; readcache = true; }, '
                   '{ type = "file"; path = "%s"; } ); }; } );\n' % base)
    p = diskstack("check", "-c", bad, check=2)
    assert "bad.conf:1: disks.[0].stack.layers.[0].readcache: unknown setting" in p.stderr


def test_config_form_with_layer_settings(diskstack, tmp_path, base, mount):
    conf = tmp_path / "layers.conf"
    conf.write_text("""
disks = (
  { name = "d.img";
    stack = { type = "layered";
              layers = ( { type = "ram"; write_through = true; },
                         { type = "ram"; },
                         { type = "file"; path = "base.raw"; } ); }; }
);
""")
    p = diskstack("check", "-c", conf, check=0)
    assert "write_through = true;" in p.stdout
    again = tmp_path / "again.conf"
    again.write_text(p.stdout)
    assert diskstack("check", "-c", again, check=0).stdout == p.stdout
    d = mount("-c", conf)
    rows = layers(d)
    assert [r[-1] for r in rows] == ["rw,write-through", "rw", "ro"]
    with open(d.path("d.img"), "r+b") as f:
        f.write(b"through")
    assert int(layers(d)[0][3]) == 512 and int(layers(d)[1][3]) == 512, \
        "a write reaches the write-through layer below the top"


def test_snapshots_while_a_writer_runs(mount, base):
    """snapshot and commit, again and again, while fio writes with 32
    requests in flight: afterwards every block verifies (no write lost or
    left in a dropped layer)."""
    need("fio")
    import subprocess
    import threading
    d = mount("--disk", "d.img=memdiff:%s" % base)
    img = str(d.path("d.img"))
    stop = threading.Event()
    done = {"snap": 0, "commit": 0, "errors": []}

    def churn():
        while not stop.is_set():
            for cmd in ("snapshot", "snapshot", "commit", "commit"):
                err, why = ctl(d, "d.img", "snapshot", cmd)
                if err:
                    done["errors"].append((cmd, err, why))
                else:
                    done["snap" if cmd == "snapshot" else "commit"] += 1

    t = threading.Thread(target=churn)
    t.start()
    try:
        w = subprocess.run(["fio", "--name=live", "--filename=" + img,
                            "--rw=randwrite", "--bs=4k", "--size=24M",
                            "--ioengine=io_uring", "--iodepth=32", "--direct=1",
                            "--verify=crc32c", "--do_verify=0",
                            "--verify_state_save=0"],
                           capture_output=True, text=True)
    finally:
        stop.set()
        t.join()
    assert w.returncode == 0, w.stdout + w.stderr
    assert not done["errors"], done["errors"]
    assert done["snap"] > 4 and done["commit"] > 4
    assert [r[0] for r in layers(d)] == ["1", "0"]
    run(["fio", "--name=live", "--filename=" + img, "--rw=randwrite",
         "--bs=4k", "--size=24M", "--ioengine=io_uring", "--iodepth=32",
         "--direct=1", "--verify=crc32c", "--verify_only=1",
         "--verify_fatal=1", "--verify_state_save=0"])
