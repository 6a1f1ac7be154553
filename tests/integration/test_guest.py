"""A real VMM on the mount: QEMU boots a small Linux guest whose only
disk is an image file served by diskstack.

raw:  the guest checks data the host put on the disk, writes slices of a
      random pattern at chosen offsets (buffered with fsync, buffered and
      left to the final sync, O_DIRECT; one at a 512-byte but not 4 KiB
      aligned offset, one ending at the last byte of the disk, one over the
      host's data), syncs, drops its caches, reads everything back and
      compares, then prints its result. After QEMU and the daemon have
      exited, the backing file must be byte for byte the image the host
      predicts, which also catches writes that landed in the wrong place.
ext4: the host makes an ext4 image (mkfs.ext4 -d); the guest mounts it,
      checks a host file, writes files (one large, many small), deletes a
      host file, unmounts, remounts read-only and checks. The host then
      runs e2fsck -f -n and reads the guest's files with debugfs.

Each case is one boot, 3 to 6 s under TCG. KVM is used only with
kvm_intel or kvm_amd loaded.
"""

import os
import random
import subprocess
from pathlib import Path

import pytest

import guest
from conftest import make_file, run

KiB = 1024
MiB = 1024 * KiB

DISK_SIZE = 64 * MiB
SEED_OFF = 8 * MiB
SEED_LEN = 256 * KiB

# (name, disk offset, length, how): how is
#   buf    buffered, dd conv=fsync (flushed before the next write)
#   lazy   buffered, left in the guest's page cache for the final sync
#          (which then sends many writes at once)
#   direct O_DIRECT
# Every write takes its own slice of the pattern, and no two overlap.
RAW_WRITES = [
    ("start", 0, 64 * KiB, "buf"),
    ("unaligned-direct", 1 * MiB + 512, 300 * KiB + 512, "direct"),
    ("unaligned-buffered", 3 * MiB + 3 * 512, 700 * KiB + 1024, "lazy"),
    ("over-seed", SEED_OFF + 128 * KiB + 512, 64 * KiB, "direct"),
    ("bulk-lazy", 16 * MiB, 4 * MiB, "lazy"),
    ("direct-1m", 24 * MiB, 1 * MiB, "direct"),
    ("end", DISK_SIZE - 96 * KiB - 512, 96 * KiB + 512, "direct"),
]

EXT4_SIZE = 64 * MiB
EXT4_PATTERN_LEN = 1 * MiB + 12345          # not a multiple of any block
EXT4_SMALL_FILES = 200
EXT4_NOTE = "written by the guest\n"


def _layout():
    """RAW_WRITES with the pattern offset each one copies from."""
    src, out, end = 0, [], 0
    for name, off, length, how in sorted(RAW_WRITES, key=lambda w: w[1]):
        # O_DIRECT needs whole sectors; overlapping writes would make the
        # guest's own check depend on their order.
        assert off % 512 == 0 and length % 512 == 0, name
        assert off >= end and off + length <= DISK_SIZE, name
        end = off + length
    for name, off, length, how in RAW_WRITES:
        out.append((name, off, src, length, how))
        src += length
    return out, src


RAW_LAYOUT, PATTERN_LEN = _layout()


def _random_bytes(seed, n):
    return random.Random(seed).randbytes(n)


GUEST_SCRIPT = r"""
dd_q() {  # dd, quiet unless it fails
    dd "$@" 2>/tmp/dd.err && return 0
    cat /tmp/dd.err
    return 1
}
slice() {  # slice FILE OFF LEN OUT: bytes OFF..OFF+LEN of FILE
    dd_q if="$1" of="$4" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3"
}
md5() { md5sum "$1" | cut -d" " -f1; }   # cmp is 3x slower under TCG
readback() {  # readback OFF LEN OUT FLAGS: LEN bytes of /dev/vda at OFF
    dd_q if=/dev/vda of="$3" bs=64K iflag=skip_bytes,count_bytes$4 skip="$1" count="$2"
}

raw_test() {
    size=$(blockdev --getsize64 /dev/vda)
    [ "$size" = "$vt_size" ] || fail "disk size $size, expected $vt_size"
    seedlen=$(stat -c %s /seed.bin)
    readback "$vt_seed" "$seedlen" /tmp/got ,direct || fail "reading the seed"
    [ "$(md5 /tmp/got)" = "$(md5 /seed.bin)" ] || fail "the host's seed reads back wrong"
    n=0
    for w in $(echo "$vt_writes" | tr , ' '); do
        set -- $(echo "$w" | tr : ' ')
        n=$((n + 1))
        slice /pattern.bin "$2" "$3" /tmp/w || fail "slicing the pattern"
        eval "sum_$n=$(md5 /tmp/w)"
        case "$4" in
        buf) dd_q if=/tmp/w of=/dev/vda bs=64K oflag=seek_bytes seek="$1" conv=notrunc,fsync ;;
        lazy) dd_q if=/tmp/w of=/dev/vda bs=64K oflag=seek_bytes seek="$1" conv=notrunc ;;
        direct) dd_q if=/tmp/w of=/dev/vda bs=64K oflag=seek_bytes,direct seek="$1" conv=notrunc ;;
        *) fail "unknown write kind $4" ;;
        esac || fail "write $4 of $3 bytes at $1"
    done
    rm -f /tmp/w
    sync
    echo 3 > /proc/sys/vm/drop_caches
    i=0
    for w in $(echo "$vt_writes" | tr , ' '); do
        set -- $(echo "$w" | tr : ' ')
        i=$((i + 1))
        eval "want=\$sum_$i"
        readback "$1" "$3" /tmp/got ,direct || fail "O_DIRECT read of $3 bytes at $1"
        [ "$(md5 /tmp/got)" = "$want" ] || fail "O_DIRECT read of $3 bytes at $1 differs"
        readback "$1" "$3" /tmp/got "" || fail "read of $3 bytes at $1"
        [ "$(md5 /tmp/got)" = "$want" ] || fail "buffered read of $3 bytes at $1 differs"
    done
    pass "mode=raw writes=$n"
}

ext4_test() {
    mount -t ext4 /dev/vda /mnt || fail "mount ext4"
    cmp -s /mnt/host/seed.bin /seed.bin || fail "host/seed.bin differs"
    [ -f /mnt/host/delete-me ] || fail "host/delete-me missing"
    mkdir -p /mnt/guest/small || fail "mkdir"
    cp /ext4-pattern.bin /mnt/guest/pattern.bin || fail "cp pattern"
    echo "written by the guest" > /mnt/guest/note.txt || fail "note"
    i=0
    while [ $i -lt "$vt_small" ]; do
        echo "small file $i" > /mnt/guest/small/f$i || fail "small file $i"
        i=$((i + 1))
    done
    dd if=/seed.bin of=/mnt/guest/direct.bin bs=64K oflag=direct 2>/tmp/dd.err \
        || { cat /tmp/dd.err; fail "O_DIRECT write into ext4"; }
    rm /mnt/host/delete-me || fail "rm host/delete-me"
    sync
    umount /mnt || fail "umount"
    echo 3 > /proc/sys/vm/drop_caches
    mount -t ext4 -o ro /dev/vda /mnt || fail "mount ext4 read-only"
    cmp -s /mnt/guest/pattern.bin /ext4-pattern.bin || fail "guest/pattern.bin differs"
    cmp -s /mnt/guest/direct.bin /seed.bin || fail "guest/direct.bin differs"
    cmp -s /mnt/host/seed.bin /seed.bin || fail "host/seed.bin differs after remount"
    [ -e /mnt/host/delete-me ] && fail "host/delete-me still there"
    n=$(ls /mnt/guest/small | wc -l)
    [ "$n" -eq "$vt_small" ] || fail "$n small files, expected $vt_small"
    [ "$(cat /mnt/guest/small/f7)" = "small file 7" ] || fail "small/f7 differs"
    umount /mnt || fail "umount read-only"
    pass "mode=ext4 small=$n"
}

case "$vt_mode" in
raw) raw_test ;;
ext4) ext4_test ;;
*) fail "unknown vmtest.mode=$vt_mode" ;;
esac
"""


class GuestSetup:
    """Everything one session's boots share."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.seed = _random_bytes(1, SEED_LEN)
        self.pattern = _random_bytes(2, PATTERN_LEN)
        self.ext4_pattern = _random_bytes(3, EXT4_PATTERN_LEN)
        try:
            self.qemu = guest.qemu_binary()
            busybox = guest.static_busybox()
        except guest.Unavailable as e:
            pytest.skip(str(e))
        try:
            self.kernel = guest.guest_kernel()
            self.image = guest.boot_image(self.kernel, self.workdir)
            self.initrd = guest.build_initramfs(
                self.workdir / "initramfs.cpio", self.kernel, busybox,
                GUEST_SCRIPT,
                files={"seed.bin": self.seed, "pattern.bin": self.pattern,
                       "ext4-pattern.bin": self.ext4_pattern})
        except (guest.Unavailable, guest.GuestError) as e:
            pytest.fail(str(e))

    def boot(self, tmp_path, append, drive_path, drive_opts, name):
        b = guest.run_qemu(self.image, self.initrd, append,
                           [guest.drive_arg(drive_path, drive_opts)],
                           tmp_path, name=name)
        status, detail = b.result
        assert status == "PASS", \
            "guest result %s %s\n%s" % (status, detail, b.describe())
        print("%s: %s in %.1f s (%s, kernel %s)"
              % (name, detail, b.elapsed, b.accel, self.kernel.version))
        return b


@pytest.fixture(scope="session")
def vm(tmp_path_factory):
    return GuestSetup(tmp_path_factory.mktemp("guest"))


def _expected_raw(setup):
    img = bytearray(DISK_SIZE)
    img[SEED_OFF:SEED_OFF + SEED_LEN] = setup.seed
    for _, off, src, length, _ in RAW_LAYOUT:
        img[off:off + length] = setup.pattern[src:src + length]
    return bytes(img)


def _where(off):
    """The region of the raw layout that holds disk offset off."""
    for name, woff, _, length, _ in RAW_LAYOUT:
        if woff <= off < woff + length:
            return name
    if SEED_OFF <= off < SEED_OFF + SEED_LEN:
        return "seed"
    return "untouched"


def _diff_summary(expected, got, pattern, limit=8):
    """The first few differing 4 KiB blocks: where, in which region, and
    whether the block holds pattern bytes meant for somewhere else."""
    lines = []
    if len(got) != len(expected):
        lines.append("size %d, expected %d" % (len(got), len(expected)))
    bs = 4096
    for b in range(0, min(len(got), len(expected)), bs):
        blk = got[b:b + bs]
        if blk == expected[b:b + bs]:
            continue
        first = next(i for i in range(b, b + len(blk))
                     if got[i] != expected[i])
        hint = ""
        sector = first - first % 512
        probe = got[sector:sector + 512]
        if len(probe) == 512 and probe.count(0) != len(probe):
            j = pattern.find(probe)
            if j >= 0:
                hint = ", holds pattern bytes from %d" % j
        lines.append("block at %d (first differing byte %d, region %s)%s"
                     % (b, first, _where(first), hint))
        if len(lines) >= limit:
            lines.append("...")
            break
    return "\n".join(lines)


# (disk spec for the daemon, QEMU drive options). cache=none with
# io_uring keeps several guest requests in flight at once.
RAW_CASES = [
    pytest.param("{}", "cache=writeback", id="writeback"),
    pytest.param("{}", "cache=none,aio=io_uring", id="none-io_uring"),
    pytest.param("file:{};direct", "cache=none,aio=io_uring",
                 id="none-io_uring-direct-backing"),
]


@pytest.mark.slow
@pytest.mark.parametrize("spec,drive_opts", RAW_CASES)
def test_guest_raw(vm, mount, tmp_path, spec, drive_opts):
    backing = make_file(tmp_path / "backing.img", DISK_SIZE,
                        [(SEED_OFF, vm.seed)])
    d = mount("--disk", "disk.img=" + spec.format(backing))
    image = d.path("disk.img")
    assert os.stat(image).st_size == DISK_SIZE
    writes = ",".join("%d:%d:%d:%s" % (off, src, length, how)
                      for _, off, src, length, how in RAW_LAYOUT)
    append = ("vmtest.mode=raw vmtest.size=%d vmtest.seed=%d vmtest.writes=%s"
              % (DISK_SIZE, SEED_OFF, writes))
    vm.boot(tmp_path, append, image, drive_opts, "raw")
    d.stop()

    expected = tmp_path / "expected.img"
    expected.write_bytes(_expected_raw(vm))
    p = subprocess.run(["cmp", str(expected), str(backing)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail("the backing file differs from the expected image\n"
                    "$ cmp %s %s\n%s%s\n%s"
                    % (expected, backing, p.stdout, p.stderr,
                       _diff_summary(expected.read_bytes(),
                                     backing.read_bytes(), vm.pattern)))


def _debugfs(img, request):
    return run(["debugfs", "-R", request, img])


@pytest.mark.slow
def test_guest_ext4(vm, mount, tmp_path):
    fsroot = tmp_path / "fsroot"
    (fsroot / "host").mkdir(parents=True)
    (fsroot / "host" / "seed.bin").write_bytes(vm.seed)
    (fsroot / "host" / "delete-me").write_text("the guest deletes this\n")
    backing = make_file(tmp_path / "backing.img", EXT4_SIZE)
    run(["mkfs.ext4", "-q", "-F", "-L", "vmtest", "-d", fsroot, backing])
    d = mount("--disk", "disk.img=%s" % backing)
    image = d.path("disk.img")
    assert os.stat(image).st_size == EXT4_SIZE
    append = "vmtest.mode=ext4 vmtest.small=%d" % EXT4_SMALL_FILES
    vm.boot(tmp_path, append, image, "cache=none,aio=io_uring", "ext4")
    d.stop()

    assert os.stat(backing).st_size == EXT4_SIZE
    fsck = run(["e2fsck", "-f", "-n", backing], check=False)
    assert fsck.returncode == 0, \
        "e2fsck -f -n exit %d\n%s%s" % (fsck.returncode, fsck.stdout,
                                        fsck.stderr)
    for rel, want in (("/guest/pattern.bin", vm.ext4_pattern),
                      ("/guest/direct.bin", vm.seed),
                      ("/host/seed.bin", vm.seed)):
        out = tmp_path / "dump.bin"
        if out.exists():
            out.unlink()
        _debugfs(backing, "dump %s %s" % (rel, out))
        assert out.exists(), "debugfs could not dump %s" % rel
        assert out.read_bytes() == want, "%s differs in the image" % rel
    assert _debugfs(backing, "cat /guest/note.txt").stdout == EXT4_NOTE
    assert _debugfs(backing, "cat /guest/small/f123").stdout == "small file 123\n"
    names = [l.split("/")[5] for l in
             _debugfs(backing, "ls -p /guest/small").stdout.splitlines()
             if l.count("/") >= 6]
    names = [n for n in names if n not in (".", "..")]
    assert len(names) == EXT4_SMALL_FILES, names
    gone = _debugfs(backing, "stat /host/delete-me")
    assert "File not found" in gone.stderr, \
        "host/delete-me still in the image:\n%s%s" % (gone.stdout, gone.stderr)


@pytest.mark.slow
def test_guest_memdiff(vm, mount, tmp_path):
    """A guest on memdiff: over a file writes into memory; the image shows
    them, the file below stays as it was."""
    backing = make_file(tmp_path / "backing.img", DISK_SIZE,
                        [(SEED_OFF, vm.seed)])
    before = backing.read_bytes()
    d = mount("--disk", "disk.img=memdiff:%s" % backing)
    image = d.path("disk.img")
    writes = ",".join("%d:%d:%d:%s" % (off, src, length, how)
                      for _, off, src, length, how in RAW_LAYOUT)
    append = ("vmtest.mode=raw vmtest.size=%d vmtest.seed=%d vmtest.writes=%s"
              % (DISK_SIZE, SEED_OFF, writes))
    vm.boot(tmp_path, append, image, "cache=none,aio=io_uring", "memdiff")
    expected = _expected_raw(vm)
    with open(image, "rb") as f:
        got = f.read()
    assert got == expected, "the image differs from what the guest wrote\n" + \
        _diff_summary(expected, got, vm.pattern)
    d.stop()
    assert backing.read_bytes() == before, "the file below was written"
