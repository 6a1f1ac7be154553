"""Shared fixtures for the integration tests.

`mount` starts `diskstack mount -f` on a fresh mountpoint, waits until the
mount shows in /proc/self/mountinfo (never before: after a crash the path
is a plain directory), and at the end stops the daemon with SIGTERM and
asserts that it unmounted and exited 0 with no sanitizer report in its
stderr. A failing test prints the command line that reproduces it.
"""

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
)


def diskstack_binary():
    b = os.environ.get("DISKSTACK")
    if b:
        return b
    for cand in (ROOT / "build" / "fs" / "diskstack",):
        if cand.exists():
            return str(cand)
    pytest.fail("diskstack binary not found: set DISKSTACK or build into build/")


def mounts_at(path):
    """{mount id: fstype} of the mounts at path in /proc/self/mountinfo."""
    path = os.path.realpath(path)
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4].encode().decode("unicode_escape")
            if mp == path:
                found[fields[0]] = fields[fields.index("-") + 1]
    return found


def mounted(path):
    """The fstype of the top mount at path, or None."""
    found = mounts_at(path)
    return list(found.values())[-1] if found else None


def alive(path):
    """A live diskstack mount answers with its .ctl directory; a stale one
    (its daemon died) gives ENOTCONN. Listing asks the daemon; stat may be
    served from cache."""
    try:
        return ".ctl" in os.listdir(path)
    except OSError:
        return False


def sanitizer_report(text):
    return any(m in text for m in SANITIZER_MARKS)


class Daemon:
    """One `diskstack mount -f` process and its mountpoint."""

    def __init__(self, tmp_path, args, name="mnt", env=None):
        self.binary = diskstack_binary()
        self.mountpoint = tmp_path / name
        try:
            self.mountpoint.mkdir()
        except FileExistsError:
            pass  # also a stale mount of a daemon killed before
        self.log_path = tmp_path / (name + ".log")
        self.args = [str(a) for a in args]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log = None

    @property
    def cmdline(self):
        return shlex.join([self.binary, "mount", "-f", *self.args,
                           str(self.mountpoint)])

    def path(self, name):
        return self.mountpoint / name

    def stderr(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout=30):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "mount", "-f", *self.args, str(self.mountpoint)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # a stale mount of a daemon killed before may still be listed:
            # it answers ENOTCONN, a live one answers
            # alive first: a dead mount can vanish between the two checks,
            # leaving the plain directory, which lists without error
            if alive(self.mountpoint) and mounted(self.mountpoint) == "fuse.diskstack":
                return self
            if self.proc.poll() is not None:
                pytest.fail("daemon exited %d before mounting\n$ %s\n%s"
                            % (self.proc.returncode, self.cmdline,
                               self.stderr()))
            time.sleep(0.02)
        pytest.fail("not mounted after %ds\n$ %s\n%s"
                    % (timeout, self.cmdline, self.stderr()))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Stop with sig; assert a clean unmount and exit 0."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._cleanup_mount()
            pytest.fail("daemon did not stop in %ds\n$ %s\n%s"
                        % (timeout, self.cmdline, self.stderr()))
        self.proc = None
        self.log.close()
        still = mounted(self.mountpoint)
        self._cleanup_mount()
        err = self.stderr()
        assert not sanitizer_report(err), \
            "sanitizer report in the daemon's stderr\n$ %s\n%s" % (self.cmdline, err)
        assert still is None, "still mounted after the daemon exited"
        assert rc == 0, "daemon exited %d\n$ %s\n%s" % (rc, self.cmdline, err)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def _cleanup_mount(self):
        if mounted(self.mountpoint) is None:
            return
        for cmd in (["fusermount3", "-u", str(self.mountpoint)],
                    ["fusermount3", "-u", "-z", str(self.mountpoint)]):
            subprocess.run(cmd, stderr=subprocess.DEVNULL)
            if mounted(self.mountpoint) is None:
                return
            time.sleep(0.2)

    def abandon(self):
        """Teardown after a failure: end our process by PID, unmount."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
        self._cleanup_mount()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def mount(request, tmp_path):
    """mount(args...) -> a started Daemon; stopped and checked at the end."""
    daemons = []

    def start(*args, name="mnt", env=None, timeout=30):
        d = Daemon(tmp_path, args, name=name, env=env)
        daemons.append(d)
        return d.start(timeout=timeout)

    yield start
    failed = getattr(request.node, "rep_call", None)
    failed = failed is not None and failed.failed
    for d in reversed(daemons):  # a later mount may stand on an earlier one
        if failed:
            print("\nto reproduce: $ %s\n--- daemon stderr ---\n%s"
                  % (d.cmdline, d.stderr()))
            d.abandon()
        else:
            d.stop()


@pytest.fixture
def diskstack():
    """Run the program: diskstack(args...) -> CompletedProcess (text)."""
    binary = diskstack_binary()

    def run(*args, check=None, input=None, timeout=60):
        p = subprocess.run([binary, *[str(a) for a in args]],
                           capture_output=True, text=True, input=input,
                           timeout=timeout)
        assert not sanitizer_report(p.stderr), p.stderr
        if check is not None:
            assert p.returncode == check, \
                "$ %s\nexit %d\n%s%s" % (shlex.join([binary, *map(str, args)]),
                                         p.returncode, p.stdout, p.stderr)
        return p

    return run


def make_file(path, size, data=None):
    """A sparse file of size bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
        if data:
            for off, buf in data:
                f.seek(off)
                f.write(buf)
    return path


def run(cmd, check=True, **kw):
    """Run a client program; on failure show its output."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       **kw)
    if check and p.returncode != 0:
        pytest.fail("$ %s\nexit %d\n%s%s" % (shlex.join(map(str, cmd)),
                                             p.returncode, p.stdout, p.stderr))
    return p


def need(tool):
    """Skip the test when a client program is missing."""
    if not shutil.which(tool):
        pytest.skip("%s is not installed (tests/install-deps test)" % tool)


def ctl(d, disk, file, cmd):
    """Write a command to .ctl/DISK/FILE of a mount; return (errno or 0,
    the reason read back on the same fd)."""
    fd = os.open(d.path(".ctl/%s/%s" % (disk, file)), os.O_RDWR)
    try:
        try:
            os.write(fd, cmd.encode())
            return 0, ""
        except OSError as e:
            return e.errno, os.read(fd, 4096).decode()
    finally:
        os.close(fd)
