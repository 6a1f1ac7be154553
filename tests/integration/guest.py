"""Helpers for the QEMU guest tests: a tiny Linux guest boots with one
virtio-blk disk, runs a shell script from its initramfs, prints one
result line on the serial console and powers off.

* guest_kernel(): a Debian kernel and its modules, from
  $DISKSTACK_GUEST_ROOT or tests/guest-kernel (which downloads and
  unpacks the current package into a cache once).
* extract_vmlinux(): the uncompressed ELF inside a bzImage, so QEMU can
  start it through its PVH entry point (no XZ decompression under TCG).
* build_initramfs(): an uncompressed newc cpio with a static busybox,
  the virtio and ext4 modules in kmod's load order, the test's files and
  an /init that runs the test's script.
* run_qemu(): one boot, console in a file; parse_result() reads the
  "VMTEST-RESULT: PASS|FAIL ..." line back.

Nothing here depends on pytest; the test module turns Unavailable into
a skip.
"""

import gzip
import lzma
import os
import re
import shlex
import shutil
import stat
import struct
import subprocess
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUEST_KERNEL_SCRIPT = ROOT / "tests" / "guest-kernel"
RESULT_MARK = "VMTEST-RESULT:"
GUEST_MODULES = ("virtio_pci", "virtio_blk", "ext4")
KVM_SILENCE = 10     # s without console output before KVM counts as broken


class Unavailable(Exception):
    """A tool the guest tests need is missing on this machine."""


class GuestError(Exception):
    """Preparing the guest failed (a bug in the setup, not a skip)."""


# ---------------------------------------------------------------- tools

def qemu_binary():
    """$QEMU, else qemu-system-x86_64 from PATH."""
    q = os.environ.get("QEMU") or shutil.which("qemu-system-x86_64")
    if not q or not os.access(q, os.X_OK):
        raise Unavailable("qemu-system-x86_64 not found "
                          "(apt-get install qemu-system-x86)")
    return q


def _elf_is_static(path):
    """True if path is an ELF executable without a program interpreter."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            return False
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
        else:
            phoff, = struct.unpack_from(end + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, = struct.unpack(end + "I", f.read(4))
            if p_type == 3:          # PT_INTERP: dynamically linked
                return False
        return True


def static_busybox():
    """$BUSYBOX, else /bin/busybox or /usr/bin/busybox, if statically
    linked (it is copied into the initramfs as it is)."""
    env = os.environ.get("BUSYBOX")
    cands = [env] if env else ["/bin/busybox", "/usr/bin/busybox"]
    for c in cands:
        if os.path.isfile(c) and _elf_is_static(c):
            return c
    raise Unavailable("no statically linked busybox in %s "
                      "(apt-get install busybox-static)" % " or ".join(cands))


def kvm_usable():
    """KVM only with a real kvm_intel/kvm_amd: /dev/kvm from another
    module (such as kvm_pvm) hangs a stock kernel."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return (os.path.isdir("/sys/module/kvm_intel")
            or os.path.isdir("/sys/module/kvm_amd"))


# --------------------------------------------------------------- kernel

class Kernel:
    """A kernel image, its version and the root its modules live under."""

    def __init__(self, root, version):
        self.root = Path(root)
        self.version = version
        self.vmlinuz = self.root / "boot" / ("vmlinuz-" + version)
        self.moddir = self.root / "lib" / "modules" / version

    def config(self, option):
        """The value of CONFIG_option from boot/config-VER, or None."""
        cfg = self.root / "boot" / ("config-" + self.version)
        try:
            text = cfg.read_text(errors="replace")
        except OSError:
            return None
        m = re.search(r"^CONFIG_%s=(.*)$" % re.escape(option), text, re.M)
        return m.group(1) if m else None

    def __repr__(self):
        return "Kernel(%s, %s)" % (self.root, self.version)


def _kernels_in(root):
    """Complete kernels (image readable, modules.dep present) under root,
    newest version first."""
    found = []
    for k in (Path(root) / "boot").glob("vmlinuz-*"):
        ver = k.name[len("vmlinuz-"):]
        if (os.access(k, os.R_OK)
                and (Path(root) / "lib/modules" / ver / "modules.dep").is_file()):
            found.append(ver)

    def key(v):
        return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", v)]
    found.sort(key=key, reverse=True)
    return [Kernel(root, v) for v in found]


def guest_kernel():
    """Find or fetch a guest kernel: $DISKSTACK_GUEST_ROOT (a directory
    with boot/vmlinuz-VER and lib/modules/VER) if set, else what
    tests/guest-kernel prints (it downloads and unpacks the current
    Debian kernel package once, then reuses it). Only when that script
    fails is a kernel installed on the host used instead."""
    env = os.environ.get("DISKSTACK_GUEST_ROOT")
    if env:
        ks = _kernels_in(env)
        if not ks:
            raise GuestError("DISKSTACK_GUEST_ROOT=%s holds no boot/vmlinuz-VER "
                             "with lib/modules/VER/modules.dep" % env)
        return ks[0]
    p = subprocess.run([str(GUEST_KERNEL_SCRIPT)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=900)
    lines = p.stdout.strip().splitlines()
    root = lines[-1] if lines else ""
    if p.returncode == 0 and root:
        ks = _kernels_in(root)
        if ks:
            return ks[0]
        problem = "printed %r, which holds no kernel" % root
    else:
        problem = "failed (exit %d)" % p.returncode
    ks = _kernels_in("/")
    if ks:
        return ks[0]
    raise GuestError("%s %s, and no kernel is installed on the host\n%s"
                     % (GUEST_KERNEL_SCRIPT, problem, p.stderr))


def _decompress_at(data, pos, kind):
    """Decompress the stream of kind starting at pos, ignoring whatever
    follows it; None if it is not a valid stream."""
    try:
        if kind == "xz":
            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            return d.decompress(data[pos:])
        if kind == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return d.decompress(data[pos:])
    except (lzma.LZMAError, zlib.error, EOFError):
        return None
    return None


def extract_vmlinux(vmlinuz, out):
    """Write the uncompressed ELF kernel inside bzImage vmlinuz to out.
    Tries every XZ and gzip header in the image, like the kernel's
    scripts/extract-vmlinux. Returns out, or None when nothing inside
    is an ELF file (then boot the bzImage itself)."""
    data = Path(vmlinuz).read_bytes()
    if data[:4] == b"\x7fELF":
        shutil.copyfile(vmlinuz, out)
        return out
    for kind, magic in (("xz", b"\xfd7zXZ\x00"), ("gzip", b"\x1f\x8b\x08")):
        pos = data.find(magic)
        while pos >= 0:
            elf = _decompress_at(data, pos, kind)
            if elf and elf[:4] == b"\x7fELF":
                Path(out).write_bytes(elf)
                return out
            pos = data.find(magic, pos + 1)
    return None


def boot_image(kernel, workdir):
    """The file to pass to -kernel: the uncompressed vmlinux when the
    kernel has a PVH entry (much faster under TCG), else the bzImage."""
    if kernel.config("PVH") == "y":
        vml = extract_vmlinux(kernel.vmlinuz, Path(workdir) / "vmlinux")
        if vml:
            return Path(vml)
    return kernel.vmlinuz


# ------------------------------------------------------------ initramfs

_INSMOD_RE = re.compile(r"^insmod\s+(\S.*?\.ko(?:\.xz|\.zst|\.gz)?)(?:\s|$)")


def module_files(kernel, names=GUEST_MODULES):
    """The module files names need, in load order and without repeats, as
    `modprobe -a --show-depends` resolves them (softdeps included)."""
    cmd = ["modprobe", "-a", "-S", kernel.version, "--show-depends"]
    if kernel.root != Path("/"):
        cmd[1:1] = ["-d", str(kernel.root)]
    modprobe = shutil.which("modprobe") or (
        "/usr/sbin/modprobe" if os.path.exists("/usr/sbin/modprobe")
        else "/sbin/modprobe")
    if not os.path.exists(modprobe):
        raise Unavailable("modprobe not found (apt-get install kmod)")
    cmd[0] = modprobe
    p = subprocess.run(cmd + list(names), capture_output=True, text=True)
    if p.returncode != 0:
        raise GuestError("$ %s\nexit %d\n%s"
                         % (shlex.join(cmd + list(names)), p.returncode,
                            p.stderr))
    seen, order = set(), []
    for line in p.stdout.splitlines():
        m = _INSMOD_RE.match(line.strip())
        if m and m.group(1) not in seen:
            seen.add(m.group(1))
            order.append(Path(m.group(1)))
    # Every requested module that is not built in must appear.
    builtin = {l.split()[1] for l in p.stdout.splitlines()
               if l.startswith("builtin ")}
    for n in names:
        stem = n.replace("-", "_")
        if not any(f.name.split(".ko")[0].replace("-", "_") == stem
                   for f in order) and stem not in {
                       b.replace("-", "_") for b in builtin}:
            raise GuestError("modprobe did not resolve %s:\n%s"
                             % (n, p.stdout))
    return order


def _module_bytes(path):
    """The plain .ko for path (compressed modules decompressed here,
    because busybox insmod may not understand them)."""
    name = path.name
    if name.endswith(".ko.xz"):
        return name[:-3], lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return name[:-3], gzip.decompress(path.read_bytes())
    if name.endswith(".ko.zst"):
        zstd = shutil.which("zstd")
        if not zstd:
            raise Unavailable("%s is zstd-compressed and zstd is missing" % path)
        out = subprocess.run([zstd, "-dc", str(path)], capture_output=True,
                             check=True).stdout
        return name[:-4], out
    return name, path.read_bytes()


INIT_PROLOGUE = r"""#!/bin/busybox sh
# /init of the test guest: mount the basics, load the block modules, wait
# for /dev/vda, then run /test.sh. Whatever happens, print one result line
# and power off (a panic also ends QEMU because of -no-reboot panic=-1).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
mount -t tmpfs tmpfs /tmp
pass() { echo "VMTEST-RESULT: PASS $*"; sync; poweroff -f; sleep 60; }
fail() { echo "VMTEST-RESULT: FAIL $*"; sync; poweroff -f; sleep 60; }
log() { echo "vmtest: $*"; }
# vmtest.NAME=VALUE from the kernel command line, as $vt_NAME.
for a in $(cat /proc/cmdline); do
    case "$a" in
    vmtest.*=*) k=${a%%=*}; k=${k#vmtest.}; eval "vt_$k=\${a#*=}" ;;
    esac
done
while read -r m; do
    insmod "/lib/modules/$m" 2>/dev/null || log "insmod $m failed"
done < /lib/modules/order
i=0
while [ ! -b /dev/vda ]; do
    i=$((i + 1))
    [ $i -gt 300 ] && fail "no /dev/vda after 30 s"
    sleep 0.1
done
. /test.sh
fail "test script ended without a result"
"""


def build_initramfs(out, kernel, busybox, script, files=None,
                    modules=GUEST_MODULES):
    """Write an uncompressed newc initramfs to out. script becomes
    /test.sh (sourced by /init, see INIT_PROLOGUE); files maps paths in
    the guest (relative to /) to bytes or host paths."""
    out = Path(out)
    tree = out.with_name(out.name + ".d")
    if tree.exists():
        shutil.rmtree(tree)
    for d in ("bin", "dev", "proc", "sys", "mnt", "tmp", "lib/modules"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox, tree / "bin" / "busybox")
    os.chmod(tree / "bin" / "busybox", 0o755)
    order = []
    for ko in module_files(kernel, modules):
        name, data = _module_bytes(ko)
        (tree / "lib" / "modules" / name).write_bytes(data)
        order.append(name)
    (tree / "lib" / "modules" / "order").write_text("\n".join(order) + "\n")
    (tree / "init").write_text(INIT_PROLOGUE)
    os.chmod(tree / "init", 0o755)
    (tree / "test.sh").write_text(script)
    for rel, content in (files or {}).items():
        dst = tree / rel.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, (bytes, bytearray)):
            dst.write_bytes(content)
        else:
            shutil.copyfile(content, dst)
    _write_cpio(tree, out)
    shutil.rmtree(tree)
    return out


def _write_cpio(tree, out):
    """Pack tree as a newc archive (what `find | cpio -o -H newc` makes),
    all files owned by root."""
    ino = [0]

    def entry(f, name, mode, data=b"", nlink=1):
        ino[0] += 1
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            ino[0], mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
            len(nb), 0))
        f.write(hdr.encode() + nb)
        f.write(b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
        f.write(data)
        f.write(b"\0" * ((4 - len(data) % 4) % 4))

    with open(out, "wb") as f:
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            rel = os.path.relpath(dirpath, tree)
            if rel != ".":
                entry(f, rel, stat.S_IFDIR | 0o755, nlink=2)
            for fn in sorted(filenames):
                p = os.path.join(dirpath, fn)
                r = os.path.normpath(os.path.join(rel, fn))
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    entry(f, r, stat.S_IFLNK | 0o777, os.readlink(p).encode())
                else:
                    with open(p, "rb") as g:
                        entry(f, r, stat.S_IFREG | (st.st_mode & 0o777),
                              g.read())
        entry(f, "TRAILER!!!", 0)


# ----------------------------------------------------------------- qemu

class Boot:
    """What one QEMU run left behind."""

    def __init__(self, cmd, console_path, rc, elapsed, timed_out, accel):
        self.cmd = cmd
        self.console_path = Path(console_path)
        self.rc = rc
        self.elapsed = elapsed
        self.timed_out = timed_out
        self.accel = accel
        self.qemu_log = ""

    @property
    def console(self):
        try:
            return self.console_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def result(self):
        return parse_result(self.console)

    def tail(self, n=40):
        return "\n".join(self.console.splitlines()[-n:])

    def describe(self):
        return ("$ %s\nqemu exit %s after %.1f s (%s)%s\n"
                "--- qemu output ---\n%s"
                "--- last lines of the console ---\n%s"
                % (shlex.join(self.cmd), self.rc, self.elapsed, self.accel,
                   ", TIMED OUT" if self.timed_out else "",
                   self.qemu_log, self.tail()))


def parse_result(console):
    """(status, detail) of the last result line, or (None, None)."""
    status = detail = None
    for line in console.splitlines():
        i = line.find(RESULT_MARK)
        if i < 0:
            continue
        words = line[i + len(RESULT_MARK):].strip().split(None, 1)
        if words and words[0] in ("PASS", "FAIL"):
            status = words[0]
            detail = words[1].strip() if len(words) > 1 else ""
    return status, detail


def drive_arg(path, opts):
    """A -drive value; commas in the path are doubled as QEMU wants."""
    return "file=%s,format=raw,if=virtio,%s" % (str(path).replace(",", ",,"),
                                               opts)


def run_qemu(kernel_image, initrd, append, drives, workdir, name="guest",
             timeout=None, memory=256, accel=None):
    """Boot once and wait for QEMU to exit. drives: list of -drive
    values. Returns a Boot; the caller checks .result. The QEMU process
    is always gone when this returns."""
    if accel is None:
        accel = "kvm" if kvm_usable() else "tcg"
    if timeout is None:
        timeout = 60 if accel == "kvm" else 180
    workdir = Path(workdir)
    console = workdir / (name + ".console")
    qlog = workdir / (name + ".qemu.log")
    cmd = [qemu_binary(), "-nodefaults", "-no-user-config", "-display", "none",
           "-no-reboot", "-accel", accel, "-m", str(memory), "-smp", "1",
           "-kernel", str(kernel_image), "-initrd", str(initrd),
           "-append", "console=ttyS0 panic=-1 quiet " + append,
           "-serial", "file:%s" % console]
    for d in drives:
        cmd += ["-drive", d]
    if console.exists():
        console.unlink()
    start = time.monotonic()
    timed_out = silent = False
    with open(qlog, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                now = time.monotonic() - start
                if now > timeout:
                    timed_out = True
                    break
                if (accel == "kvm" and now > KVM_SILENCE
                        and not _nonempty(console)):
                    silent = True
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
            rc = proc.wait()
    if silent:
        # Some KVM setups run nothing at all: fall back to TCG once.
        return run_qemu(kernel_image, initrd, append, drives, workdir,
                        name=name, memory=memory, accel="tcg")
    boot = Boot(cmd, console, rc, time.monotonic() - start, timed_out, accel)
    boot.qemu_log = qlog.read_text(errors="replace")
    return boot


def _nonempty(path):
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False
