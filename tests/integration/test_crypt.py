"""Encryption through the mount: what lands in the backing file is
XTS-AES-256 as dm-crypt aes-xts-plain64 writes it (checked with Python's
`cryptography`, and against a LUKS1 image that QEMU made and wrote), the
key file rules, and the key kept out of every output and out of core
dumps."""

import os
import re

import pytest

from conftest import make_file, run, need

MiB = 1 << 20
SECTOR = 512

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:  # pragma: no cover - installed by tests/install-deps
    Cipher = None


def need_cryptography():
    if Cipher is None:
        pytest.skip("python3-cryptography is not installed "
                    "(tests/install-deps test)")


def xts(key, data, first_sector, encrypt, sector=SECTOR):
    """Sector by sector, tweak = sector index, little-endian."""
    out = bytearray()
    for i in range(0, len(data), sector):
        tweak = (first_sector + i // sector).to_bytes(16, "little")
        c = Cipher(algorithms.AES(key), modes.XTS(tweak))
        op = c.encryptor() if encrypt else c.decryptor()
        out += op.update(data[i:i + sector]) + op.finalize()
    return bytes(out)


def new_key(path):
    key = os.urandom(64)
    while key[:32] == key[32:]:
        key = os.urandom(64)
    path.write_bytes(key)
    path.chmod(0o600)
    return key


@pytest.fixture
def keyfile(tmp_path):
    p = tmp_path / "disk.key"
    return p, new_key(p)


def test_ciphertext_is_xts_plain64(mount, tmp_path, keyfile):
    need_cryptography()
    kpath, key = keyfile
    backing = make_file(tmp_path / "c.raw", 8 * MiB)
    d = mount("--disk", "c.img=crypt:xts-aes-256:%s:file:%s" % (kpath, backing))
    img = d.path("c.img")
    plain = os.urandom(256 * 1024)
    with open(img, "r+b") as f:
        f.seek(3 * MiB + 4096)
        f.write(plain)
        f.flush()
        os.fsync(f.fileno())
    with open(backing, "rb") as f:
        f.seek(3 * MiB + 4096)
        raw = f.read(len(plain))
    assert raw != plain
    first = (3 * MiB + 4096) // SECTOR
    assert xts(key, raw, first, encrypt=False) == plain
    # the reverse: ciphertext made here reads back as its plaintext
    plain2 = os.urandom(64 * 1024)
    with open(backing, "r+b") as f:
        f.seek(MiB)
        f.write(xts(key, plain2, MiB // SECTOR, encrypt=True))
    fd = os.open(img, os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap
        buf = mmap.mmap(-1, len(plain2))
        assert os.preadv(fd, [buf], MiB) == len(plain2)
        assert bytes(buf) == plain2
    finally:
        os.close(fd)
    # zeroes written through crypt are encrypted zeroes, never holes
    run(["fallocate", "-z", "-o", str(2 * MiB), "-l", "65536", img])
    with open(img, "rb") as f:
        f.seek(2 * MiB)
        assert f.read(65536) == bytes(65536)
    with open(backing, "rb") as f:
        f.seek(2 * MiB)
        assert f.read(65536) != bytes(65536)
    run(["fallocate", "-p", "-o", str(3 * MiB), "-l", "65536", img])
    with open(img, "rb") as f:
        f.seek(3 * MiB)
        assert f.read(65536) == bytes(65536)


def test_4096_byte_sectors_use_the_4096_byte_index(mount, tmp_path, keyfile):
    need_cryptography()
    kpath, key = keyfile
    backing = make_file(tmp_path / "c.raw", 8 * MiB)
    d = mount("--disk", "c.img=crypt:xts-aes-256:%s:file:%s;sector=4096"
              % (kpath, backing))
    plain = os.urandom(16384)
    with open(d.path("c.img"), "r+b") as f:
        f.seek(8192)
        f.write(plain)
    with open(backing, "rb") as f:
        f.seek(8192)
        raw = f.read(len(plain))
    assert xts(key, raw, 2, encrypt=False, sector=4096) == plain


def luks_dump(image, pwfile):
    """(payload offset in bytes, the 64-byte volume key)"""
    p = run(["cryptsetup", "luksDump", "--dump-volume-key", "--batch-mode",
             "--key-file", pwfile, image])
    out = p.stdout
    off = int(re.search(r"Payload offset:\s*(\d+)", out).group(1)) * 512
    m = re.search(r"MK dump:\s*((?:[0-9a-f]{2}\s*)+)", out)
    key = bytes.fromhex("".join(m.group(1).split()))
    assert len(key) == 64
    return off, key


def test_luks1_image_made_by_qemu(mount, tmp_path):
    need("qemu-img")
    need("qemu-io")
    need("cryptsetup")
    image = tmp_path / "x.luks"
    secret = ["--object", "secret,id=s0,data=test"]
    opts = "driver=luks,key-secret=s0,file.filename=%s" % image
    run(["qemu-img", "create", "-f", "luks", *secret, "-o",
         "key-secret=s0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,"
         "iter-time=10", image, "8M"])
    run(["qemu-io", *secret, "--image-opts", opts,
         "-c", "write -P 0xab 0 64k", "-c", "write -P 0x5c 3M 512"])
    pw = tmp_path / "pw"
    pw.write_text("test")
    payload, vkey = luks_dump(image, pw)
    kpath = tmp_path / "volume.key"
    kpath.write_bytes(vkey)
    kpath.chmod(0o600)
    spec = "crypt:xts-aes-256:%s:file:%s;offset=%d" % (kpath, image, payload)
    d = mount("--disk", "l.img=" + spec)
    img = d.path("l.img")
    assert os.path.getsize(img) == os.path.getsize(image) - payload
    with open(img, "r+b") as f:
        assert f.read(65536) == b"\xab" * 65536
        f.seek(3 * MiB)
        assert f.read(512) == b"\x5c" * 512
        # what we write QEMU reads back
        f.seek(5 * MiB)
        f.write(b"\x3c" * 8192)
        f.seek(100 * SECTOR)
        f.write(b"\x77" * SECTOR)
        f.flush()
        os.fsync(f.fileno())
    d.stop()
    run(["qemu-io", *secret, "--image-opts", opts, "-r",
         "-c", "read -P 0x3c 5M 8k", "-c", "read -P 0x77 51200 512",
         "-c", "read -P 0xab 0 51200", "-c", "read -P 0x5c 3M 512"])


def test_key_file_refusals(diskstack, tmp_path):
    backing = make_file(tmp_path / "c.raw", MiB)
    k = tmp_path / "k.key"

    def check(text):
        p = diskstack("check", "--disk",
                      "c.img=crypt:xts-aes-256:%s:file:%s" % (k, backing))
        assert p.returncode == 2, p.stdout + p.stderr
        assert text in p.stderr, p.stderr
        return p.stderr

    new_key(k)
    k.chmod(0o644)
    check("chmod 600 %s" % k)
    k.chmod(0o640)
    check("chmod 600")
    k.chmod(0o600)
    k.write_bytes(os.urandom(63))
    check("63")
    k.write_bytes(os.urandom(65))
    check("65")
    half = os.urandom(32)
    k.write_bytes(half + half)
    err = check("identical")
    assert half.hex() not in err
    os.unlink(k)
    check("k.key")
    p = diskstack("check", "--disk", "c.img=crypt:aes-cbc:%s:file:%s"
                  % (k, backing))
    assert p.returncode == 2 and "xts-aes-256" in p.stderr


def small_dontdump_mappings(pid):
    """Mappings of at most 8 KiB marked MADV_DONTDUMP (VmFlags dd); the
    sanitizers' shadow memory is dd too, but far larger."""
    found, size = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("VmFlags:"):
                if "dd" in line.split()[1:] and size is not None and size <= 8:
                    found.append(size)
                size = None
    return found


def test_key_never_shown_and_not_dumped(mount, diskstack, tmp_path, keyfile):
    kpath, key = keyfile
    backing = make_file(tmp_path / "c.raw", 4 * MiB)
    spec = "c.img=crypt:xts-aes-256:%s:file:%s" % (kpath, backing)
    forms = [key.hex(), key.hex().upper(), key[:32].hex(), key[32:].hex()]

    def clean(text, what):
        for f in forms:
            assert f not in text, "key in %s" % what

    p = diskstack("check", "--disk", spec, check=0)
    clean(p.stdout + p.stderr, "check")
    assert key not in (p.stdout + p.stderr).encode(errors="surrogateescape")
    p = diskstack("info", spec.split("=", 1)[1], check=0)
    clean(p.stdout + p.stderr, "info")
    d = mount("-D", "all=2", "--disk", spec)
    with open(d.path("c.img"), "r+b") as f:
        f.write(os.urandom(8192))
    for name in ("info", "size"):
        with open(d.path(".ctl/c.img/" + name)) as f:
            clean(f.read(), ".ctl/c.img/" + name)
    # the key's page is left out of core dumps
    assert small_dontdump_mappings(d.proc.pid), "no MADV_DONTDUMP key page"
    d.stop()
    log = d.log_path.read_bytes()
    assert key not in log
    clean(log.decode(errors="replace"), "the daemon's log")


def test_unmap_over_crypt_is_unspecified(mount, tmp_path, keyfile):
    kpath, _ = keyfile
    backing = make_file(tmp_path / "c.raw", 4 * MiB)
    d = mount("--disk", "c.img=crypt:xts-aes-256:%s:file:%s"
              % (kpath, backing))
    with open(d.path(".ctl/c.img/info")) as f:
        info = f.read()
    assert "unmap: unspecified" in info
    # a hole in the ciphertext is not a hole of zeroes: lseek shows data
    fd = os.open(d.path("c.img"), os.O_RDONLY)
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
    finally:
        os.close(fd)
