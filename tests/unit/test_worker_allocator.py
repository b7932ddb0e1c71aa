"""The worker bounds glibc's arenas: threads that decode images share two heaps instead of
each keeping one at its peak. Each case runs in a fresh interpreter, whose allocator
nothing else has touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Eight threads, each of which allocates, alive at once; then glibc's own report of its
# heaps (`malloc_info`), one <heap> per arena.
COUNT_ARENAS = textwrap.dedent(
    """
    import ctypes, sys, tempfile, threading
    from ferry.worker import tune_allocator

    print(tune_allocator(int(sys.argv[1]), int(sys.argv[2])))
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
    together = threading.Barrier(9)

    def work():
        libc.malloc(1 << 20)
        together.wait()
        together.wait()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    together.wait()
    with tempfile.NamedTemporaryFile("r") as report:
        out = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
        libc.malloc_info(0, out)
        libc.fclose(out)
        print(report.read().count("<heap nr="))
    together.wait()
    """
)


def arenas_after(arenas: int, trim_bytes: int) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_ARENAS, str(arenas), str(trim_bytes)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tuned, heaps = done.stdout.split()
    return tuned, int(heaps)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux")
def test_the_worker_s_threads_share_two_arenas() -> None:
    assert arenas_after(2, 128 * 1024) == ("True", 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux")
def test_zero_leaves_glibc_s_own_arenas() -> None:
    tuned, heaps = arenas_after(0, 0)
    assert tuned == "True"
    assert heaps > 2, "one arena per thread, up to glibc's limit of eight per core"
