#!/usr/bin/python3
"""diskstack benchmark: fio through image files, side by side in one run.

Targets (each gets a fresh daemon, and fresh layers):
  raw            fio on the backing file itself: the limit
  ds-direct      diskstack, file:BACKING;direct      (headline row)
  ds-buffered    diskstack, file:BACKING             (reads the host page cache)
  ds-memdiff     diskstack, memdiff:file:BACKING;direct   (a ram layer on top)
  ds-sqldiff     diskstack, sqldiff:NEW.db;create:file:BACKING;direct
  qsd-direct     qemu-storage-daemon FUSE export, aio=io_uring,cache.direct=on
  qsd-buffered   qemu-storage-daemon FUSE export, aio=threads,cache.direct=off
  qsd-qcow2      qemu-storage-daemon FUSE export of a new qcow2 overlay (64 KiB
                 clusters) over BACKING, aio=io_uring,cache.direct=on
  ds-crypt       diskstack, crypt:xts-aes-256:KEY:file:LUKS;offset=PAYLOAD;direct
                 (the payload of a LUKS1 image, with its volume key)
  ds-window      diskstack, file:LUKS;offset=PAYLOAD;direct (the same bytes
                 as ds-crypt, not decrypted: its plain stack on the same file)
  qsd-luks       qemu-storage-daemon FUSE export of the same LUKS1 image,
                 driver=luks, aio=io_uring,cache.direct=on

Jobs (fio, ioengine=io_uring, direct=1, time based): 4k random read QD1,
4k random read QD32, 1M sequential read QD8, 4k random write QD32, 1M
sequential write QD8. Measured per job: IOPS, MiB/s, mean latency, the
daemon's CPU seconds per GiB moved (its whole process tree, from
/proc/PID/stat), and the machine's CPU busy outside fio and the daemon.
Per target: the daemon's peak resident memory (VmHWM).

Passes alternate the target order; the table shows medians. Like is
compared with like: ds-direct with qsd-direct, ds-buffered with
qsd-buffered. Buffered rows read memory: they can beat raw.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
GiB = 1 << 30
MiB = 1 << 20

JOBS = [
    # name, fio args, what to report
    ("rr4k-qd1", ["--rw=randread", "--bs=4k", "--iodepth=1"], "read"),
    ("rr4k-qd32", ["--rw=randread", "--bs=4k", "--iodepth=32"], "read"),
    ("sr1m-qd8", ["--rw=read", "--bs=1M", "--iodepth=8"], "read"),
    ("rw4k-qd32", ["--rw=randwrite", "--bs=4k", "--iodepth=32"], "write"),
    ("sw1m-qd8", ["--rw=write", "--bs=1M", "--iodepth=8"], "write"),
]

PEER = {"ds-direct": "qsd-direct", "ds-buffered": "qsd-buffered",
        "ds-memdiff": "qsd-qcow2", "ds-sqldiff": "qsd-qcow2",
        "ds-crypt": "qsd-luks"}
# layered and encrypted rows are also compared with diskstack's plain
# stack; the encrypted one also with the plain stack on the same file
PLAIN = {"ds-memdiff": ("ds-direct",), "ds-sqldiff": ("ds-direct",),
         "ds-crypt": ("ds-direct", "ds-window")}
ALL_TARGETS = ["raw", "ds-direct", "ds-buffered", "ds-memdiff", "ds-sqldiff",
               "ds-crypt", "ds-window", "qsd-direct", "qsd-buffered",
               "qsd-qcow2", "qsd-luks"]
LUKS_TARGETS = ("ds-crypt", "ds-window", "qsd-luks")
LUKS_SECRET = "bench"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = s.strip().upper().rstrip("B").rstrip("I")
    if s and s[-1] in units:
        return int(s[:-1]) * units[s[-1]]
    return int(s)


# ---- processes and CPU accounting ----

def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def cpu_ticks(pid):
    """utime + stime of a process (all its threads), in ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def tree_cpu(pid):
    return sum(cpu_ticks(p) for p in tree(pid)) / CLK_TCK


def machine_busy():
    """(busy seconds, total seconds) over all CPUs since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / CLK_TCK, sum(v) / CLK_TCK


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].encode().decode("unicode_escape") == path:
                return True
    return False


def drop_cache(path):
    """Drop this file's pages from the page cache (only ours)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---- targets ----

class Target:
    """A daemon serving the backing file as an image (or nothing: raw)."""

    def __init__(self, name, backing, work, args):
        self.name = name
        if name in LUKS_TARGETS:
            backing = args.luks["image"]
        self.backing = backing
        self.work = work
        self.args = args
        self.proc = None
        self.image = backing
        self.mnt = None

    def start(self):
        if self.name == "raw":
            return
        self.log = open(os.path.join(self.work, self.name + ".log"), "ab")
        if self.name.startswith("ds-"):
            self.mnt = os.path.join(self.work, "mnt-" + self.name)
            os.makedirs(self.mnt, exist_ok=True)
            plain = "file:%s%s" % (self.backing,
                                   "" if self.name == "ds-buffered" else ";direct")
            if self.name == "ds-memdiff":
                spec = "memdiff:" + plain
            elif self.name == "ds-sqldiff":
                db = os.path.join(self.work, "layer.db")
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.unlink(db + suffix)
                spec = "sqldiff:%s;create:%s" % (db, plain)
            elif self.name in ("ds-crypt", "ds-window"):
                spec = "file:%s;offset=%d;direct" % (
                    self.backing, self.args.luks["payload"])
                if self.name == "ds-crypt":
                    spec = "crypt:xts-aes-256:%s:%s" % (self.args.luks["key"],
                                                        spec)
            else:
                spec = plain
            cmd = [self.args.diskstack, "mount", "-f", "--disk", "disk.img=" + spec]
            if self.args.threads:
                cmd += ["--threads", str(self.args.threads)]
            cmd.append(self.mnt)
            self.image = os.path.join(self.mnt, "disk.img")
            watch = self.mnt
        else:
            self.image = os.path.join(self.work, "qsd-" + self.name + ".img")
            open(self.image, "w").close()
            objects = []
            if self.name == "qsd-luks":
                objects = ["--object", "secret,id=s0,data=" + LUKS_SECRET]
                node = ("driver=luks,node-name=f,key-secret=s0,file.driver=file,"
                        "file.filename=%s,file.aio=io_uring,cache.direct=on"
                        % self.backing)
            elif self.name == "qsd-qcow2":
                overlay = os.path.join(self.work, "overlay.qcow2")
                if os.path.exists(overlay):
                    os.unlink(overlay)
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                                "-o", "cluster_size=65536", "-b", self.backing,
                                "-F", "raw", overlay], check=True)
                node = ("driver=qcow2,node-name=f,file.driver=file,"
                        "file.filename=%s,file.aio=io_uring,cache.direct=on"
                        % overlay)
            else:
                opts = ("aio=io_uring,cache.direct=on"
                        if self.name == "qsd-direct"
                        else "aio=threads,cache.direct=off")
                node = "driver=file,node-name=f,filename=%s,%s" % (
                    self.backing, opts)
            cmd = ["qemu-storage-daemon", *objects, "--blockdev", node,
                   "--export", "type=fuse,id=e,node-name=f,mountpoint=%s,writable=on"
                   % self.image]
            watch = self.image
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while not mounted(watch):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not mount: %s" % (self.name, " ".join(cmd)))
            time.sleep(0.02)
        self.watch = watch

    def stop(self):
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        if mounted(self.watch):
            subprocess.run(["fusermount3", "-u", "-z", self.watch],
                           stderr=subprocess.DEVNULL)
        return rc

    @property
    def pid(self):
        return self.proc.pid if self.proc else None


def run_job(args, target, job):
    name, fio_args, kind = job
    drop_cache(target.backing)
    cmd = ["fio", "--name=" + name, "--filename=" + target.image,
           "--ioengine=io_uring", "--direct=1", "--time_based",
           "--runtime=%d" % args.runtime, "--ramp_time=%d" % args.ramp,
           "--norandommap", "--randrepeat=0", "--size=%d" % args.size,
           "--output-format=json"] + fio_args
    pid = target.pid
    samples = {}

    def sample(key):
        samples[key] = (tree_cpu(pid) if pid else 0.0, machine_busy(),
                        tree_cpu(fio.pid), time.monotonic())

    fio = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    timer = threading.Timer(args.ramp, sample, ("start",))
    timer2 = threading.Timer(args.ramp + args.runtime - 0.05, sample, ("end",))
    timer.start()
    timer2.start()
    try:
        out, err = fio.communicate(timeout=args.runtime + args.ramp + 120)
    except BaseException:
        fio.kill()
        fio.wait()
        raise
    finally:
        timer.cancel()
        timer2.cancel()
    if fio.returncode != 0:
        raise RuntimeError("fio %s on %s failed: %s" % (name, target.name, err.strip()))
    res = json.loads(out[out.index("{"):])["jobs"][0]
    if res["error"]:
        raise RuntimeError("fio %s on %s: error %d" % (name, target.name, res["error"]))
    io = res[kind]
    r = {"iops": io["iops"], "mibs": io["bw_bytes"] / MiB,
         "lat_us": io["lat_ns"]["mean"] / 1000.0}
    if "start" in samples and "end" in samples:
        d0, m0, f0, t0 = samples["start"]
        d1, m1, f1, t1 = samples["end"]
        dcpu, fcpu = d1 - d0, f1 - f0
        moved = io["bw_bytes"] * (t1 - t0)
        r["cpu_s_gib"] = dcpu / (moved / GiB) if pid and moved else None
        r["cpu_us_req"] = (dcpu / (io["iops"] * (t1 - t0)) * 1e6
                           if pid and io["iops"] else None)
        busy = (m1[0] - m0[0]) - dcpu - fcpu
        r["other_busy"] = max(0.0, busy) / ((t1 - t0) * NCPU) * 100
    return r


# ---- the backing file ----

def make_backing(args):
    path = os.path.join(args.dir, "backing-%d.raw" % args.size)
    if os.path.exists(path):
        st = os.stat(path)
        if st.st_size == args.size and st.st_blocks * 512 >= args.size:
            return path
        os.unlink(path)
    free = shutil.disk_usage(args.dir).free
    if free < args.size + GiB:
        raise SystemExit("bench: %s has %d MiB free; the backing file needs %d MiB "
                         "plus 1 GiB of room (use --dir or --size)"
                         % (args.dir, free // MiB, args.size // MiB))
    log("bench: writing %d MiB of random data to %s" % (args.size // MiB, path))
    tmp = path + ".tmp"
    subprocess.run(["fio", "--name=fill", "--filename=" + tmp, "--rw=write",
                    "--bs=1M", "--size=%d" % args.size, "--direct=1",
                    "--ioengine=io_uring", "--iodepth=8", "--refill_buffers=1",
                    "--randrepeat=0", "--output-format=terse"],
                   check=True, stdout=subprocess.DEVNULL)
    os.rename(tmp, path)
    return path


def luks_dump(image, pw):
    return subprocess.run(["cryptsetup", "luksDump", "--dump-volume-key",
                           "--batch-mode", "--key-file", pw, image],
                          check=True, capture_output=True, text=True).stdout


def make_luks(args, work):
    """A LUKS1 image (aes-256-xts-plain64) with a payload of the backing
    file's size, its payload offset and volume key (in a key file) from
    cryptsetup. The payload is filled with random bytes like the backing
    file: blocks written as zeroes can stay unallocated below a virtual
    disk, and writing to them later is far slower."""
    image = os.path.join(args.dir, "luks-%d.img" % args.size)
    pw = os.path.join(work, "luks.pw")
    with open(pw, "w") as f:
        f.write(LUKS_SECRET)
    out = None
    if os.path.exists(image):
        try:
            out = luks_dump(image, pw)
        except subprocess.CalledProcessError as e:
            log("bench: the kept LUKS image %s does not open any more (%s); "
                "making it again" % (image, (e.stderr or "").strip()))
            os.unlink(image)
    if out is None:
        log("bench: making a %d MiB LUKS1 image of random data"
            % (args.size // MiB))
        tmp = image + ".tmp"
        subprocess.run(["qemu-img", "create", "-q", "-f", "luks",
                        "--object", "secret,id=s0,data=" + LUKS_SECRET, "-o",
                        "key-secret=s0,cipher-alg=aes-256,cipher-mode=xts,"
                        "ivgen-alg=plain64,iter-time=10",
                        tmp, str(args.size)], check=True)
        payload = luks_payload(luks_dump(tmp, pw))
        subprocess.run(["fio", "--name=fill", "--filename=" + tmp,
                        "--rw=write", "--bs=1M", "--offset=%d" % payload,
                        "--size=%d" % args.size, "--direct=1",
                        "--ioengine=io_uring", "--iodepth=8",
                        "--refill_buffers=1", "--randrepeat=0",
                        "--output-format=terse"],
                       check=True, stdout=subprocess.DEVNULL)
        os.rename(tmp, image)
        out = luks_dump(image, pw)
    payload = luks_payload(out)
    key = None
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("MK dump:"):
            hexes = line.split(":", 1)[1].split()
            for more in lines[i + 1:]:
                if ":" in more:
                    break
                hexes += more.split()
            key = bytes.fromhex("".join(hexes))
    if payload is None or key is None or len(key) != 64:
        raise RuntimeError("cannot read the LUKS image's payload offset and key")
    keyfile = os.path.join(work, "luks.key")
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return {"image": image, "payload": payload, "key": keyfile}


def luks_payload(dump):
    """The payload offset in bytes from luksDump's output, or None."""
    for line in dump.splitlines():
        if line.startswith("Payload offset:"):
            return int(line.split()[-1]) * 512
    return None


# ---- the table ----

def fmt(v, nd=0):
    if v is None:
        return "—"
    return ("%." + str(nd) + "f") % v


def table(results, targets, args):
    med = {}
    for t in targets:
        for j, _, _ in JOBS:
            runs = results[t][j]
            med[t, j] = {k: statistics.median([r[k] for r in runs if r.get(k) is not None])
                         if any(r.get(k) is not None for r in runs) else None
                         for k in ("iops", "mibs", "lat_us", "cpu_s_gib",
                                   "cpu_us_req", "other_busy")}
    lines = []
    head = ("| target | 4k rr QD1 IOPS | QD1 lat µs | 4k rr QD32 IOPS | 4k rw QD32 IOPS "
            "| 1M read MiB/s | 1M write MiB/s | CPU s/GiB 4k rr | CPU s/GiB 1M r "
            "| CPU µs/req 4k QD32 | peak RSS MiB | other CPU busy % |")
    lines.append(head)
    lines.append("|" + "---|" * 12)
    for t in targets:
        busy = max(med[t, j]["other_busy"] or 0 for j, _, _ in JOBS)
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            t, fmt(med[t, "rr4k-qd1"]["iops"]), fmt(med[t, "rr4k-qd1"]["lat_us"], 1),
            fmt(med[t, "rr4k-qd32"]["iops"]), fmt(med[t, "rw4k-qd32"]["iops"]),
            fmt(med[t, "sr1m-qd8"]["mibs"]), fmt(med[t, "sw1m-qd8"]["mibs"]),
            fmt(med[t, "rr4k-qd32"]["cpu_s_gib"], 2), fmt(med[t, "sr1m-qd8"]["cpu_s_gib"], 2),
            fmt(med[t, "rr4k-qd32"]["cpu_us_req"], 1),
            fmt(statistics.median(results[t]["rss_mib"]) if results[t]["rss_mib"] else None, 1),
            fmt(busy, 1)))
    lines.append("")
    lines.append("Ratios (higher is better; QD1 latency: lower is better):")
    lines.append("")
    lines.append("| target | vs | 4k rr QD1 lat | 4k rr QD32 | 4k rw QD32 | 1M read | 1M write |")
    lines.append("|---|---|---|---|---|---|---|")

    def ratio(a, b, key):
        x, y = med[a, key[0]][key[1]], med[b, key[0]][key[1]]
        if not x or not y:
            return "—"
        return "%.2f×" % (x / y)

    for t in targets:
        for base in ("raw", PEER.get(t)) + PLAIN.get(t, ()):
            if not base or base not in targets or base == t:
                continue
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                t, base,
                ratio(t, base, ("rr4k-qd1", "lat_us")),
                ratio(t, base, ("rr4k-qd32", "iops")),
                ratio(t, base, ("rw4k-qd32", "iops")),
                ratio(t, base, ("sr1m-qd8", "mibs")),
                ratio(t, base, ("sw1m-qd8", "mibs"))))
    lines.append("")
    lines.append("Encrypted rows (ds-crypt, qsd-luks) serve the payload of "
                 "one LUKS1 aes-256-xts-plain64 image of the same size: "
                 "diskstack with the volume key, qemu-storage-daemon with "
                 "driver=luks; ds-window serves the same payload bytes "
                 "without decrypting them.")
    lines.append("")
    lines.append("Layered rows write into a fresh layer (ds-memdiff: memory; "
                 "ds-sqldiff: a new database; qsd-qcow2: a new overlay that "
                 "copies a 64 KiB cluster on the first write to it) over the "
                 "same backing file.")
    lines.append("")
    lines.append("%d pass(es), %s each job %d s after %d s ramp, %d MiB backing file, "
                 "medians. Buffered rows (ds-buffered, qsd-buffered) read the host page "
                 "cache: compare them with each other, not with raw. \"other CPU busy\" is "
                 "the largest share of the machine busy outside fio and the daemon "
                 "during a job: a high value means a noisy run."
                 % (args.passes, "alternating the target order," if args.passes > 1 else "",
                    args.runtime, args.ramp, args.size // MiB))
    return "\n".join(lines)


def vm_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def ram_memory(args, backing, work):
    """The ram layer's memory per GiB it holds, after writing min(1 GiB,
    half the disk) in 4 KiB blocks at random places (each block once)."""
    amount = min(GiB, args.size // 2)
    t = Target("ds-memdiff", backing, work, args)
    t.start()
    try:
        rss0 = vm_rss_kib(t.pid)
        subprocess.run(["fio", "--name=fill", "--filename=" + t.image,
                        "--rw=randwrite", "--bs=4k", "--size=%d" % amount,
                        "--ioengine=io_uring", "--iodepth=32", "--direct=1",
                        "--output-format=terse"],
                       check=True, stdout=subprocess.DEVNULL)
        rss1 = vm_rss_kib(t.pid)
        info = open(os.path.join(t.mnt, ".ctl", "disk.img", "info")).read()
    finally:
        t.stop()
    held = data = tables = 0
    for line in info.splitlines():
        f = line.split()
        if len(f) > 2 and f[1] == "ram":
            kv = dict(x.split("=") for x in f[2:])
            held, data = int(kv["held"]), int(kv.get("memory-data", 0))
            tables = int(kv.get("memory-tables", 0))
    if not held:
        raise RuntimeError("the ram layer holds nothing after the writes")
    lines = ["", "The ram layer after %d MiB of 4 KiB random writes "
             "(each block once):" % (amount // MiB), "",
             "| held MiB | data MiB | tables MiB | tables / held | daemon RSS "
             "growth / held |", "|---:|---:|---:|---:|---:|",
             "| %.1f | %.1f | %.2f | %.2f %% | %.3f |" % (
                 held / MiB, data / MiB, tables / MiB, 100.0 * tables / held,
                 (rss1 - rss0) * 1024.0 / held)]
    return "\n".join(lines)


def stop_on_term(signum, frame):
    # SIGTERM (kill PID) ends the run like Ctrl-C: daemons are stopped and
    # the work directory removed
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, stop_on_term)
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="256 MiB, 2 s per job, 1 pass (for trying changes)")
    ap.add_argument("--size", default=None, help="backing file size (default 2G)")
    ap.add_argument("--runtime", type=int, default=None, help="seconds per job (default 5)")
    ap.add_argument("--ramp", type=int, default=None, help="ramp seconds (default 1)")
    ap.add_argument("--passes", type=int, default=None, help="passes (default 3)")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma-separated subset of: " + ", ".join(ALL_TARGETS))
    ap.add_argument("--threads", type=int, default=0,
                    help="diskstack --threads (default: its own default)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/var/tmp/diskstack-bench"),
                    help="where the backing file lives (default /var/tmp/diskstack-bench)")
    ap.add_argument("--diskstack", default=os.path.join(ROOT, "build", "fs", "diskstack"))
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    q = args.quick
    args.size = parse_size(args.size or ("256M" if q else "2G"))
    args.runtime = args.runtime if args.runtime is not None else (2 if q else 5)
    args.ramp = args.ramp if args.ramp is not None else (0 if q else 1)
    args.passes = args.passes or (1 if q else 3)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in ALL_TARGETS:
            ap.error("unknown target %s" % t)
    os.makedirs(args.dir, exist_ok=True)
    backing = make_backing(args)
    work = tempfile.mkdtemp(prefix="run-", dir=args.dir)
    if any(t in LUKS_TARGETS for t in targets):
        try:
            args.luks = make_luks(args, work)
        except (RuntimeError, subprocess.SubprocessError) as e:
            shutil.rmtree(work, ignore_errors=True)
            log("bench: FAILED: %s" % e)
            return 1
    results = {t: {j: [] for j, _, _ in JOBS} for t in targets}
    for t in targets:
        results[t]["rss_mib"] = []
    failed = False
    try:
        for p in range(args.passes):
            order = targets if p % 2 == 0 else list(reversed(targets))
            for t in order:
                target = Target(t, backing, work, args)
                log("bench: pass %d/%d: %s" % (p + 1, args.passes, t))
                try:
                    target.start()
                    for job in JOBS:
                        r = run_job(args, target, job)
                        results[t][job[0]].append(r)
                        log("bench:   %-9s %9.0f IOPS %8.1f MiB/s %8.1f µs"
                            "  daemon %s s/GiB, %s µs/req" % (
                                job[0], r["iops"], r["mibs"], r["lat_us"],
                                fmt(r.get("cpu_s_gib"), 2),
                                fmt(r.get("cpu_us_req"), 1)))
                    if target.pid:
                        results[t]["rss_mib"].append(vm_hwm_kib(target.pid) / 1024)
                finally:
                    rc = target.stop()
                if rc not in (0, None):
                    raise RuntimeError("%s exited %d" % (t, rc))
        text = table(results, targets, args)
        if "ds-memdiff" in targets:
            text += "\n" + ram_memory(args, backing, work)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
    except (RuntimeError, subprocess.SubprocessError) as e:
        log("bench: FAILED: %s" % e)
        failed = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
