"""SQLite layers through the mount: fio --verify through sqldiff:,
persistent snapshots that survive a restart with --state, acknowledged
writes that survive kill -9 of the daemon, and databases that are not
ours."""

import errno
import os
import shutil
import random
import sqlite3
import subprocess
import sys
import time


from conftest import Daemon, make_file, run, need, ctl

MiB = 1 << 20


def integrity(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_fio_verify_through_sqldiff(mount, tmp_path):
    need("fio")
    need("qemu-img")
    base = make_file(tmp_path / "base.raw", 64 * MiB, [(0, os.urandom(MiB))])
    before = base.read_bytes()
    db = tmp_path / "diff.db"
    d = mount("--disk", "d.img=sqldiff:%s;create:%s" % (db, base))
    for args in (["--ioengine=io_uring", "--iodepth=32", "--direct=1"],
                 ["--ioengine=psync", "--numjobs=4", "--offset_increment=8M",
                  "--size=8M"]):
        run(["fio", "--name=v", "--filename=%s" % d.path("d.img"),
             "--rw=randwrite", "--bs=4k", "--size=16M", "--verify=crc32c",
             "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0",
             "--group_reporting"] + args)
    saved = tmp_path / "image.raw"
    run(["cp", "--sparse=always", d.path("d.img"), saved])
    d.stop()
    assert base.read_bytes() == before, "the base file is untouched"
    assert integrity(db) == "ok"
    # the layer keeps its data: mount again and compare
    d = mount("--disk", "d.img=sqldiff:%s:%s" % (db, base), name="again")
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", d.path("d.img"), saved])


def test_persistent_snapshot_survives_a_restart(tmp_path, mount):
    need("qemu-img")
    base = make_file(tmp_path / "base.raw", 32 * MiB, [(0, os.urandom(MiB))])
    state = tmp_path / "state.conf"
    snap = tmp_path / "snap.db"
    args = ["--state", state, "--disk", "d.img=memdiff:%s" % base]
    d = mount(*args, name="one")
    with open(d.path("d.img"), "r+b") as f:
        f.seek(2 * MiB)
        f.write(b"in memory")
    assert ctl(d, "d.img", "snapshot", "snapshot sql:%s;create" % snap) == (0, "")
    with open(d.path("d.img"), "r+b") as f:
        f.seek(4 * MiB)
        f.write(b"in the snapshot")
    text = state.read_text()
    assert "snapshot = true;" in text and str(snap) in text
    saved = tmp_path / "saved.raw"
    run(["cp", "--sparse=always", d.path("d.img"), saved])
    d.stop()
    # a restart with the same configuration comes back with the layer
    d = mount(*args, name="two")
    rows = open(d.path(".ctl/d.img/layers")).read().splitlines()
    assert rows[0].split()[1] == "sqlite" and rows[0].endswith("rw,snapshot")
    with open(d.path("d.img"), "rb") as f:
        f.seek(4 * MiB)
        assert f.read(15) == b"in the snapshot"
        f.seek(2 * MiB)
        # the ram layer below it was frozen: a restart cannot bring it back
        assert f.read(9) == bytes(9)
    # revert drops it for good, also from the state
    assert ctl(d, "d.img", "snapshot", "revert") == (0, "")
    assert str(snap) not in state.read_text()
    d.stop()
    d = mount(*args, name="three")
    assert len(open(d.path(".ctl/d.img/layers")).read().splitlines()) == 2


def test_state_file_that_cannot_be_written(tmp_path, mount):
    """The command that changed the stack fails with EIO and says why."""
    base = make_file(tmp_path / "base.raw", 4 * MiB)
    where = tmp_path / "gone"
    where.mkdir()
    d = mount("--state", where / "state.conf", "--disk",
              "d.img=memdiff:%s" % base)
    shutil.rmtree(where)
    err, why = ctl(d, "d.img", "snapshot", "snapshot")
    assert err == errno.EIO
    assert "cannot write the state file" in why and "No such file" in why
    assert not where.exists()


# Each write is logged before it is issued ("W") and once pwrite returned
# ("A", acknowledged); every 8 writes an fsync.
WRITER = r"""
import os, random, sys
img, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
fd = os.open(img, os.O_RDWR)
logf = open(log, "a", buffering=1)
n = 0
while True:
    blk = rnd.randrange(0, 2048)
    val = (seed + n) & 0xff
    logf.write("W %d %d\n" % (blk, val))
    os.pwrite(fd, bytes([val]) * 4096, blk * 4096)
    logf.write("A %d %d\n" % (blk, val))
    if n % 8 == 7:
        os.fsync(fd)
    n += 1
"""


def test_acknowledged_writes_survive_kill9(tmp_path):
    """A writer logs each write once pwrite returned; the daemon is killed
    at random moments; after every remount each logged block reads back
    (the last value logged for it), the database passes integrity_check,
    and the mount starts cleanly."""
    db = tmp_path / "layer.db"
    base = make_file(tmp_path / "base.raw", 8 * MiB)
    writer = tmp_path / "writer.py"
    writer.write_text(WRITER)
    expect = {}   # block: the value its last acknowledged write left
    allowed = {}  # block: values it may hold (+ writes in flight at kill)
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    for round_ in range(4):
        d = Daemon(tmp_path, ["--disk", "d.img=sqldiff:%s;create:%s" % (db, base)],
                   name="crash")
        d.start()
        try:
            with open(d.path("d.img"), "rb") as f:
                for blk, vals in allowed.items():
                    f.seek(blk * 4096)
                    got = f.read(4096)
                    assert got in [bytes([v]) * 4096 for v in vals], \
                        "round %d: block %d lost its acknowledged write" % (round_, blk)
                    expect[blk] = got[0]
            allowed = {b: {v} for b, v in expect.items()}
            log = tmp_path / ("log%d" % round_)
            w = subprocess.Popen([sys.executable, str(writer), str(d.path("d.img")),
                                  str(log), str(round_ * 1000)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3 + rnd.random() * 0.7)
            d.kill9()
            w.wait(timeout=30)
        except BaseException:
            d.abandon()
            raise
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue  # cut short by the kill
            blk, val = int(parts[1]), int(parts[2])
            if parts[0] == "A":
                allowed[blk] = {val}
            else:  # in flight: the block may hold it or what it had
                allowed.setdefault(blk, {0}).add(val)
        assert integrity(db) == "ok", "round %d" % round_
    assert allowed, "the writer wrote something"
    d = Daemon(tmp_path, ["--disk", "d.img=sqldiff:%s:%s" % (db, base)], name="last")
    d.start()
    try:
        with open(d.path("d.img"), "rb") as f:
            for blk, vals in allowed.items():
                f.seek(blk * 4096)
                assert f.read(4096) in [bytes([v]) * 4096 for v in vals], \
                    "block %d lost its acknowledged write" % blk
    finally:
        d.stop()


def test_databases_that_are_not_ours(diskstack, tmp_path):
    base = make_file(tmp_path / "base.raw", 8 * MiB)
    text = tmp_path / "text.db"
    text.write_bytes(b"this is not a database\n" * 100)
    dbhd = tmp_path / "openvmm.dbhd"
    con = sqlite3.connect(dbhd)
    con.executescript("CREATE TABLE sectors(sector INTEGER NOT NULL, data BLOB, "
                      "PRIMARY KEY(sector)); CREATE TABLE meta(metadata TEXT NOT NULL);")
    con.close()
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.executescript("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    con.close()
    cases = [(text, "not an SQLite database"), (dbhd, "dbhd"),
             (other, "not a diskstack layer")]
    for db, why in cases:
        before = db.read_bytes()
        for cmd in (("check", "--disk", "d.img=sqldiff:%s:%s" % (db, base)),
                    ("mount", "-f", "--disk", "d.img=sqldiff:%s:%s" % (db, base),
                     tmp_path)):
            p = diskstack(*cmd, check=2)
            assert why in p.stderr, p.stderr
            assert "sqlite '%s'" % db in p.stderr, "names the part"
        assert db.read_bytes() == before, "nothing changed on disk"
    # a layer of another size or sector size
    diskstack("create", "sqlite", tmp_path / "small.db", "4M", check=0)
    p = diskstack("check", "--disk", "d.img=sqldiff:%s:%s" % (tmp_path / "small.db",
                                                              base), check=2)
    assert "4194304" in p.stderr and "8388608" in p.stderr
    diskstack("create", "--sector", "4096", "sqlite", tmp_path / "k.db", "8M", check=0)
    p = diskstack("check", "--disk", "d.img=sqldiff:%s:%s" % (tmp_path / "k.db",
                                                              base), check=2)
    assert "4096" in p.stderr and "512" in p.stderr
    p = diskstack("create", "sqlite", tmp_path / "small.db", "4M", check=1)
    assert "exists" in p.stderr


def test_autocache_fills_and_serves(tmp_path, mount, diskstack):
    cache = tmp_path / "cache"
    cache.mkdir()
    base = make_file(tmp_path / "base.raw", 8 * MiB, [(0, os.urandom(2 * MiB))])
    spec = "d.img=autocache:base:%s,ro" % base
    d = mount("--cache-dir", cache, "--disk", spec)
    with open(d.path("d.img"), "rb") as f:
        first = f.read(2 * MiB)
    with open(base, "rb") as f:
        assert first == f.read(2 * MiB)
    rows = open(d.path(".ctl/d.img/layers")).read().splitlines()
    assert "read-cache" in rows[0] and int(rows[0].split()[3]) >= 2 * MiB, rows
    d.stop()
    assert (cache / "base.db").exists()
    # writable use is refused: the cache is filled only from below
    p = diskstack("check", "--cache-dir", cache, "--disk",
                  "w.img=autocache:base:%s" % base, check=2)
    assert "write path" in p.stderr
    p = diskstack("check", "--disk", "w.img=autocache:base:%s,ro" % base,
                  check=None)
    if not os.environ.get("OPENVMM_AUTO_CACHE_PATH"):
        assert p.returncode == 2 and "cache directory" in p.stderr
