"""Configuration: `diskstack check` and `info`, specs and config files,
and every kind of bad input giving a clear error (exit 2) that names the
file, the line, the setting and the rule — with nothing changed on disk."""

import os
import re

import pytest

from conftest import make_file, mounted

MiB = 1 << 20


def write(path, text):
    path.write_text(text)
    return path


def test_check_prints_the_resolved_form_and_round_trips(diskstack, tmp_path):
    make_file(tmp_path / "a.raw", 4 * MiB)
    make_file(tmp_path / "b.raw", 8 * MiB)
    conf = write(tmp_path / "disks.conf", """
mount: { allow_other = false; threads = 6; };
disks = (
  { name = "a.img"; stack = "a.raw;direct"; },
  { name = "b.img"; read_only = true;
    stack = { type = "file"; path = "b.raw"; sector = 4096; }; },
  { name = "c.img"; stack = "file:new.raw;create=2M"; }
);
""")
    p = diskstack("check", "-c", conf, check=0)
    out = p.stdout
    assert 'name = "a.img";' in out
    assert 'path = "%s/a.raw";' % tmp_path in out, "relative to the file"
    assert "direct = true;" in out
    assert "sector = 4096;" in out
    assert 'format = "raw";' in out
    assert 'create = "2M";' in out
    assert "threads = 6;" in out
    assert "stack = \"" not in out, "never spec strings"
    assert not (tmp_path / "new.raw").exists(), "check creates nothing"
    again = write(tmp_path / "again.conf", out)
    os.chdir("/")
    assert diskstack("check", "-c", again, check=0).stdout == out


def test_command_line_paths_are_absolute(diskstack, tmp_path):
    make_file(tmp_path / "x.raw", MiB)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        p = diskstack("check", "--disk", "x.img=x.raw,ro", check=0)
    finally:
        os.chdir(old)
    assert 'path = "%s/x.raw";' % tmp_path in p.stdout
    assert "read_only = true;" in p.stdout


def test_info(diskstack, tmp_path):
    img = make_file(tmp_path / "d.raw", 16 * MiB, [(MiB, b"x" * 4096)])
    p = diskstack("info", img, check=0)
    assert "size: %d (16M)" % (16 * MiB) in p.stdout
    assert "sector-size: 512" in p.stdout
    assert re.search(r"allocated: 4096 ", p.stdout), p.stdout
    assert "file path=%s" % img in p.stdout
    p = diskstack("info", "file:%s;sector=4096" % img, check=0)
    assert "sector-size: 4096" in p.stdout
    p = diskstack("info", tmp_path / "missing.raw", check=2)
    assert "missing.raw" in p.stderr and "No such file" in p.stderr


MALFORMED = [
    # (text, line, what the message must say)
    ('disks = (\n  { name = "a.img"; stack = = "x.raw"; }\n);\n',
     2, "syntax error"),
    ('disks = (\n  { name = "a.img";\n    stak = "x.raw"; }\n);\n',
     3, 'disks.[0].stak: unknown setting'),
    ('disks = (\n  { name = "a.img";\n    stack = { type = "file"; path = "x.raw";\n'
     '              sector = 1000; }; }\n);\n',
     4, 'disks.[0].stack.sector: 1000: must be a power of two from 512 to 4096'),
    ('disks = (\n  { name = "bad/name"; stack = "x.raw"; }\n);\n',
     2, "disks.[0].name: \"bad/name\": a disk name cannot contain '/'"),
    ('mount: { allow_other = "yes"; };\ndisks = ();\n',
     1, 'mount.allow_other: "yes": must be true or false'),
    ('disks = (\n { name = "a.img"; stack = "tape:1G"; }\n);\n',
     2, "disks.[0].stack: \"tape:1G\": unknown disk kind 'tape'"),
    ('disks = (\n { name = "a.img";\n   stack = "file:x.raw;create=12Q"; }\n);\n',
     3, "option 'create': must be a size"),
    ('disks = (\n { name = "a.img"; stack = "x.raw"; },\n'
     ' { name = "a.img"; stack = "x.raw"; }\n);\n',
     3, 'name "a.img": a disk of that name exists already'),
    ('disks = (\n { name = "a.img"; stack = { type = "nosuch"; }; }\n);\n',
     2, 'disks.[0].stack.type: "nosuch": must be the name of a driver'),
    ('disks = (\n { name = "a.img"; stack = { type = "file"; }; }\n);\n',
     2, "file needs the setting 'path'"),
    ('disks = (\n { name = "a.img";\n stack = { type = "file"; path = "x.raw";\n'
     ' direct = "yes"; }; }\n);\n',
     4, 'disks.[0].stack.direct: "yes": must be true or false'),
]


@pytest.mark.parametrize("text,line,want", MALFORMED)
def test_malformed_configs(diskstack, tmp_path, text, line, want):
    make_file(tmp_path / "x.raw", MiB)
    conf = write(tmp_path / "bad.conf", text)
    for cmd in (("check", "-c", conf),
                ("mount", "-f", "-c", conf, tmp_path)):
        p = diskstack(*cmd, check=2)
        assert p.stdout == ""
        assert "%s:%d: " % (conf, line) in p.stderr, p.stderr
        assert want in p.stderr, p.stderr
    assert mounted(tmp_path) is None


def test_command_line_errors(diskstack, tmp_path):
    make_file(tmp_path / "x.raw", MiB)
    bad = {
        "noequals": "needs NAME=SPEC",
        ".hidden=x.raw": "cannot start with '.'",
        ".ctl=x.raw": "'.ctl' is the control directory",
        "a=b=x.raw": None,  # the name is "a"; the spec "b=x.raw" is a path
        "a.img=x.raw,on=scsi0": "option 'on' places a disk in a VM; it has no meaning here",
        "a.img=x.raw,lun=1": "option 'lun' places a disk in a VM",
        "a.img=x.raw,dvd": "option 'dvd' places a disk in a VM",
        "a.img=x.raw,bogus": "unknown flag 'bogus'",
        "a.img=file:x.raw;speed=9": "unknown option 'speed' for file",
        "a.img=file:x.raw;create": "option 'create' needs a value",
        "a.img=": "is empty",
    }
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        for arg, want in bad.items():
            p = diskstack("check", "--disk", arg)
            assert p.returncode == 2, (arg, p.stderr)
            assert "command line: --disk '%s'" % arg in p.stderr, p.stderr
            if want:
                assert want in p.stderr, (arg, p.stderr)
    finally:
        os.chdir(old)


def test_vhd_and_vhdx_are_refused(diskstack, tmp_path):
    for ext in ("vhdx", "vhd"):
        img = make_file(tmp_path / ("disk." + ext), MiB)
        p = diskstack("check", "--disk", "d.img=file:%s" % img, check=2)
        assert "is a %s image" % ext in p.stderr
        assert "not served as raw bytes" in p.stderr
        p = diskstack("mount", "-f", "--disk", "d.img=%s" % img, tmp_path, check=2)
        assert "is a %s image" % ext in p.stderr
        # on purpose, it is served raw
        diskstack("check", "--disk", "d.img=file:%s;format=raw" % img, check=0)


def test_create_never_truncates(diskstack, mount, tmp_path):
    existing = make_file(tmp_path / "e.raw", 3 * MiB, [(0, b"data")])
    before = existing.read_bytes()
    for cmd in (("check",), ("mount", "-f")):
        extra = (tmp_path,) if cmd[0] == "mount" else ()
        p = diskstack(*cmd, "--disk", "e.img=file:%s;create=2M" % existing,
                      *extra, check=2)
        assert "3145728" in p.stderr and "2097152" in p.stderr
        assert "never truncated" in p.stderr
    assert existing.read_bytes() == before
    # a missing file is created at mount, with the size
    new = tmp_path / "n.raw"
    d = mount("--disk", "n.img=file:%s;create=2M" % new)
    assert os.path.getsize(new) == 2 * MiB
    assert os.stat(d.path("n.img")).st_size == 2 * MiB


def test_open_errors_name_the_disk_and_part(diskstack, tmp_path):
    odd = make_file(tmp_path / "odd.raw", 1000)
    p = diskstack("check", "--disk", "o.img=%s" % odd, check=2)
    assert "disk 'o.img'" in p.stderr
    assert "file '%s'" % odd in p.stderr
    assert "not a multiple of the 512-byte sector size" in p.stderr


def test_the_examples_check(diskstack, tmp_path):
    """examples/demo.conf stays a valid configuration."""
    from conftest import ROOT
    conf = tmp_path / "demo.conf"
    conf.write_text((ROOT / "examples" / "demo.conf").read_text())
    (tmp_path / "data").mkdir()
    make_file(tmp_path / "data" / "demo.raw", 16 * MiB)
    make_file(tmp_path / "data" / "demo-4k.raw", 16 * MiB)
    make_file(tmp_path / "data" / "sample-ext4.raw", 16 * MiB)
    make_file(tmp_path / "data" / "secure.raw", 16 * MiB)
    make_file(tmp_path / "data" / "shared.raw", 16 * MiB)
    key = tmp_path / "data" / "secure.key"
    key.write_bytes(bytes(range(64)))
    key.chmod(0o600)
    p = diskstack("check", "-c", conf, check=0)
    assert p.stdout.count("name = ") == 6
