# -*- test-case-name: tests.test_bench_procstat -*-
"""
CPU time and resident size of a process, from C{/proc/<pid>/stat}.

The parsing and the arithmetic are pure functions (tested without
processes); L{read} is the only function that touches C{/proc}.

C{utime} and C{stime} (fields 14 and 15, clock ticks) include every thread
of the process (the SQLite writer thread of the gateway counts); children
are not included (they have their own entries).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Clock ticks per second (USER_HZ) and page size, read once per call site.
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class ProcStatError(ValueError):
    """A /proc/<pid>/stat line that cannot be parsed."""


@dataclass(frozen=True)
class Sample:
    """
    One reading of a process.

    @ivar wall: C{time.monotonic()} when it was taken (seconds).
    @ivar utime: user CPU time, clock ticks.
    @ivar stime: system CPU time, clock ticks.
    @ivar rss_pages: resident set size, pages.
    @ivar threads: number of threads.
    """

    wall: float
    utime: int
    stime: int
    rss_pages: int
    threads: int

    def cpu_seconds(self, clk_tck: int = CLK_TCK) -> float:
        """@return: user + system CPU seconds."""
        return (self.utime + self.stime) / clk_tck

    def rss_bytes(self, page_size: int = PAGE_SIZE) -> int:
        """@return: the resident set size in bytes."""
        return self.rss_pages * page_size


def parse_stat(line: str, wall: float) -> Sample:
    """
    Parse the single line of C{/proc/<pid>/stat}.

    The second field (the command name in parentheses) may itself contain
    spaces and parentheses, so the fields are counted from the B{last}
    closing parenthesis.

    @param line: the file's content.
    @param wall: the monotonic time of the reading.
    @return: a L{Sample}.
    @raise ProcStatError: the line is not a stat line.
    """
    end = line.rfind(")")
    if end < 0:
        raise ProcStatError("no ')' after the command name in %r" % (line[:60],))
    rest = line[end + 1:].split()
    # rest[0] is field 3 (state): field N is rest[N - 3].
    if len(rest) < 22:
        raise ProcStatError("only %d fields after the command name" % (len(rest),))
    try:
        return Sample(
            wall=wall,
            utime=int(rest[14 - 3]),
            stime=int(rest[15 - 3]),
            threads=int(rest[20 - 3]),
            rss_pages=int(rest[24 - 3]),
        )
    except ValueError as e:
        raise ProcStatError("non-numeric field in stat line: %s" % (e,)) from None


def read(pid: int, wall: float) -> Sample:
    """
    Read C{/proc/<pid>/stat}.

    @param pid: the process id.
    @param wall: the monotonic time to stamp the sample with.
    @return: a L{Sample}.
    @raise OSError: the process is gone.
    """
    with open("/proc/%d/stat" % (pid,), "r", encoding="ascii", errors="replace") as f:
        return parse_stat(f.read(), wall)


def parse_ppid(line: str) -> int:
    """
    @return: the parent pid (field 4) of a C{/proc/<pid>/stat} line.
    @raise ProcStatError: not a stat line.
    """
    end = line.rfind(")")
    rest = line[end + 1:].split() if end >= 0 else []
    if len(rest) < 2 or not rest[1].isdigit():
        raise ProcStatError("no parent pid in %r" % (line[:60],))
    return int(rest[1])


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    """
    @param parents: pid -> parent pid of every process.
    @return: C{root} and every process below it (children, grandchildren...),
        root first.
    """
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(sorted(children.get(pid, ())))
    return out


def total(samples: list[Sample], wall: float) -> Sample:
    """@return: one L{Sample} adding up CPU ticks, resident pages and threads."""
    return Sample(wall=wall, utime=sum(s.utime for s in samples), stime=sum(s.stime for s in samples),
                  rss_pages=sum(s.rss_pages for s in samples), threads=sum(s.threads for s in samples))


def read_tree(pid: int, wall: float) -> Sample:
    """
    Read a process and all its descendants (e.g. the gateway's worker
    processes) as one L{Sample}.  Processes that ended since their parent
    was seen are skipped; note that the CPU of a child that B{ended} during
    a step is not counted.

    @raise OSError: C{pid} itself is gone.
    """
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % (name,), "r", encoding="ascii", errors="replace") as f:
                    parents[int(name)] = parse_ppid(f.read())
            except (OSError, ProcStatError):
                continue
    samples = [read(pid, wall)]
    for child in descendants(pid, parents)[1:]:
        try:
            samples.append(read(child, wall))
        except (OSError, ProcStatError):
            continue
    return total(samples, wall)


def cpu_percent(before: Sample, after: Sample, clk_tck: int = CLK_TCK) -> float:
    """
    CPU use between two samples, in percent of one core (a process using
    two cores fully shows 200).

    @return: the percentage, 0.0 when no wall time passed.
    """
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return 100.0 * (after.cpu_seconds(clk_tck) - before.cpu_seconds(clk_tck)) / wall


def cpu_us_per_message(before: Sample, after: Sample, messages: int,
                       clk_tck: int = CLK_TCK) -> float | None:
    """
    CPU microseconds spent per message between two samples.

    @param messages: messages handled in between.
    @return: the figure, or L{None} when no message was handled.
    """
    if messages <= 0:
        return None
    return 1e6 * (after.cpu_seconds(clk_tck) - before.cpu_seconds(clk_tck)) / messages


def system_share(before: Sample, after: Sample) -> float | None:
    """
    @return: the fraction of the CPU time between two samples spent in the
        kernel (stime), or L{None} when no CPU time was used.
    """
    used = (after.utime + after.stime) - (before.utime + before.stime)
    if used <= 0:
        return None
    return (after.stime - before.stime) / used


def parse_schedstat(text: str) -> tuple[int, int]:
    """
    Parse C{/proc/<pid>/schedstat} (of the main thread): nanoseconds run on
    a CPU, nanoseconds spent runnable but waiting for a CPU, time slices.

    @return: C{(run_ns, wait_ns)}.
    @raise ProcStatError: not three numbers.
    """
    fields = text.split()
    if len(fields) < 3:
        raise ProcStatError("schedstat has %d fields, not 3" % (len(fields),))
    try:
        return int(fields[0]), int(fields[1])
    except ValueError:
        raise ProcStatError("non-numeric schedstat %r" % (text[:60],)) from None


def read_schedstat(pid: int) -> tuple[int, int] | None:
    """
    @return: L{parse_schedstat} of C{/proc/<pid>/schedstat}, or L{None}
        when the kernel does not provide it or the process is gone.
    """
    try:
        with open("/proc/%d/schedstat" % (pid,), "r", encoding="ascii") as f:
            return parse_schedstat(f.read())
    except (OSError, ProcStatError):
        return None


def wait_percent(before: tuple[int, int], after: tuple[int, int], wall: float) -> float | None:
    """
    Share of the wall time the main thread was runnable but had no CPU
    (other processes held it): high values mean the machine, not the
    gateway, was the limit.

    @param wall: seconds between the two readings.
    @return: percent, or L{None} without wall time.
    """
    if wall <= 0:
        return None
    return 100.0 * (after[1] - before[1]) / 1e9 / wall


def parse_udp_drops(text: str, port: int) -> int | None:
    """
    The kernel's drop counter of the UDP socket bound to C{port} (a
    datagram that arrived while its receive buffer was full), from the
    text of C{/proc/net/udp} (the last column, C{drops}).

    @return: the drops summed over every socket bound to that port (the
        gateway's SO_REUSEPORT workers share one), or L{None} when no socket
        is bound to it.
    @raise ProcStatError: a line that is not a socket line.
    """
    lines = text.splitlines()
    if not lines or "local_address" not in lines[0]:
        raise ProcStatError("not a /proc/net/udp table")
    wanted = ":%04X" % (port,)
    total_drops, found = 0, False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 13:
            raise ProcStatError("short /proc/net/udp line %r" % (line[:60],))
        if fields[1].upper().endswith(wanted):
            try:
                total_drops += int(fields[-1])
            except ValueError:
                raise ProcStatError("drops column is not a number in %r" % (line[:60],)) from None
            found = True
    return total_drops if found else None


def read_udp_drops(port: int) -> int | None:
    """
    Read L{parse_udp_drops} from C{/proc/net/udp} (IPv4: the benchmark uses
    127.0.0.1 only).

    @return: the drop count, or L{None} (no such socket, or no /proc).
    """
    try:
        with open("/proc/net/udp", "r", encoding="ascii", errors="replace") as f:
            return parse_udp_drops(f.read(), port)
    except (OSError, ProcStatError):
        return None

