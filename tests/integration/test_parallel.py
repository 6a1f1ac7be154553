"""Writes to one image run in parallel: every open replies
FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES, so the kernel does not
serialize the writers of the inode.

To see how many writes reach the daemon at once, the image's backing file
is itself an image of a second mount whose daemon is stopped (SIGSTOP):
each write that reaches the upper daemon then waits in one of its worker
threads, visible in /proc as a thread blocked in request_wait_answer."""

import collections
import mmap
import os
import signal
import threading
import time

from conftest import make_file

MiB = 1 << 20


def waiting_threads(pid):
    c = collections.Counter()
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/wchan" % (pid, t)) as f:
                c[f.read()] += 1
        except OSError:
            pass
    return c["request_wait_answer"]


def test_writers_of_one_image_run_in_parallel(mount, tmp_path):
    lower = mount("--disk", "x.img=%s" % make_file(tmp_path / "x.raw", 64 * MiB),
                  name="lower")
    upper = mount("--threads", "8", "--disk", "b.img=%s" % lower.path("x.img"),
                  name="upper")
    img = upper.path("b.img")
    writers = [os.open(img, os.O_RDWR | os.O_DIRECT) for _ in range(4)]
    # an fd opened another way must not serialize the writers
    other = os.open(img, os.O_RDONLY)
    buf = mmap.mmap(-1, 4096)
    buf.write(b"w" * 4096)
    threads = [threading.Thread(target=os.pwrite, args=(fd, buf, i * MiB))
               for i, fd in enumerate(writers)]
    seen = 0
    os.kill(lower.proc.pid, signal.SIGSTOP)
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = waiting_threads(upper.proc.pid)
            if seen == 4:
                break
            time.sleep(0.05)
    finally:
        os.kill(lower.proc.pid, signal.SIGCONT)
        for t in threads:
            t.join()
        for fd in writers + [other]:
            os.close(fd)
    assert seen == 4, "only %d of 4 writes reached the daemon at once" % seen
    with open(img, "rb") as f:
        for i in range(4):
            f.seek(i * MiB)
            assert f.read(4096) == b"w" * 4096
