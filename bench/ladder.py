# -*- test-case-name: tests.test_bench_ladder -*-
"""
The pure parts of the end-to-end benchmark: reading sipp's output files,
percentiles, the verdict of one step, the ladder's stop rule, the table.

Nothing here starts a process or reads a clock; L{bench.run} does that.
"""

from __future__ import annotations

import csv
import glob
import io
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

#: Default rate ladder (messages per second) and seconds per step.
DEFAULT_STEPS = (1000, 2000, 4000, 6000, 8000, 10000, 12000, 14000)
#: the rate whose CPU per message the report gives in each direction
#: (issue 5), run after the ladder's stop when the ladder did not reach it
REPORT_RATE = 8000
DEFAULT_DURATION = 15.0
#: A step whose achieved rate is below this fraction of the offered rate
#: did not sustain it (the gateway fell behind, sipp or the simulator held
#: back new messages).
MIN_ACHIEVED_FRACTION = 0.9
#: Seconds (at least) the SIP leg may lag behind the deliver_sm_resps; the
#: sipp UAS writes its counters once a second.
MAX_DRAIN = 2.0

_STATUS_LINE = re.compile(rb"SIP/2\.0 ([1-6]\d\d) ")


class ParseError(ValueError):
    """A sipp output file that cannot be read."""


# -- sipp files ---------------------------------------------------------------


def _epoch(value: str) -> float:
    # "2026-11-27\t10:47:58.699541\t1795776478.699541": the last field.
    try:
        return float(value.split("\t")[-1])
    except ValueError:
        raise ParseError("bad sipp time stamp %r" % (value,)) from None


def parse_stat_csv(text: str) -> dict:
    """
    Read a sipp C{-trace_stat} file (C{;}-separated, a header line, one
    row per dump) and return the cumulative figures of the last row.

    @param text: the file's content.
    @return: dict with C{successful}, C{failed}, C{retransmissions},
        C{dead_call_msgs}, C{out_of_call_msgs}, C{incoming}, C{outgoing},
        C{created}, C{current}, C{timeouts} (FailedMaxUDPRetrans +
        FailedTimeoutOnRecv), C{unexpected}, C{elapsed} (seconds from
        StartTime to CurrentTime), C{failures} (every non-zero
        C{Failed*(C)} counter by name) and C{raw} (the row as a dict).
    @raise ParseError: no header, no data row, or a missing column.
    """
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=";") if r and any(r)]
    if len(rows) < 2:
        raise ParseError("sipp stat file has no data row")
    header, last = rows[0], rows[-1]
    if "SuccessfulCall(C)" not in header:
        raise ParseError("not a sipp stat file (no SuccessfulCall(C) column)")
    row = dict(zip(header, last))

    def count(name: str) -> int:
        value = row.get(name)
        if value in (None, ""):
            return 0
        try:
            return int(float(value))
        except ValueError:
            raise ParseError("column %s is %r, not a number" % (name, value)) from None

    failures = {
        name[len("Failed"):-3]: count(name)
        for name in header
        if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)" and count(name)
    }
    return {
        "successful": count("SuccessfulCall(C)"),
        "failed": count("FailedCall(C)"),
        "incoming": count("IncomingCall(C)"),
        "outgoing": count("OutgoingCall(C)"),
        "created": count("TotalCallCreated"),
        "current": count("CurrentCall"),
        "retransmissions": count("Retransmissions(C)"),
        "dead_call_msgs": count("DeadCallMsgs(C)"),
        "out_of_call_msgs": count("OutOfCallMsgs(C)"),
        "timeouts": count("FailedMaxUDPRetrans(C)") + count("FailedTimeoutOnRecv(C)"),
        "unexpected": count("FailedUnexpectedMessage(C)"),
        "elapsed": max(0.0, _epoch(row.get("CurrentTime", "0")) - _epoch(row.get("StartTime", "0"))),
        "failures": failures,
        "raw": row,
    }


def merge_stats(stats: list[dict]) -> dict:
    """
    Combine the L{parse_stat_csv} results of several sipp processes that
    ran side by side (one step with several UACs): counters add up, the
    elapsed time is the longest.

    @return: a dict of the same shape (C{raw} omitted).
    """
    if not stats:
        raise ParseError("no sipp statistics to merge")
    merged = {"failures": Counter(), "elapsed": 0.0}
    for st in stats:
        for key, value in st.items():
            if key == "failures":
                merged["failures"].update(value)
            elif key == "elapsed":
                merged["elapsed"] = max(merged["elapsed"], value)
            elif key != "raw":
                merged[key] = merged.get(key, 0) + value
    merged["failures"] = dict(merged["failures"])
    return merged


def split_evenly(total: int, parts: int) -> list[int]:
    """
    @return: C{parts} integers, differing by at most one, adding up to
        C{total} (the rate or call count of each of several sipp UACs).
    """
    if parts < 1:
        raise ValueError("parts must be >= 1")
    base, extra = divmod(int(total), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def parse_rtt_csv(text: str, rtd: int = 1) -> list[float]:
    """
    Read a sipp C{-trace_rtt} file (C{Date_ms;response_time_ms;rtd_no}).

    @param rtd: keep only this response-time counter.
    @return: the response times in milliseconds, in file order.
    @raise ParseError: a line that is not three numbers.
    """
    times = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("Date_ms"):
            continue
        parts = line.split(";")
        if len(parts) < 3:
            raise ParseError("rtt line %d has %d fields: %r" % (number, len(parts), line))
        try:
            value, which = float(parts[1]), int(parts[2])
        except ValueError:
            raise ParseError("rtt line %d is not numeric: %r" % (number, line)) from None
        if which == rtd:
            times.append(value)
    return times


def rtt_args(count: int) -> list[str]:
    """
    @return: the sipp options that write every one of C{count} calls'
        response time to a C{-trace_rtt} file (L{read_rtts}): sipp writes
        the file every C{rtt_freq} calls and drops the rest at exit, so the
        frequency divides the count.
    """
    return ["-trace_rtt", "-rtt_freq", str(math.gcd(count, 1000))]


def read_rtts(directory: str, rtd: int = 1) -> list[float]:
    """
    The response times of every sipp C{-trace_rtt} file (C{*_rtt.csv}) in
    C{directory} (L{parse_rtt_csv}).

    @raise ParseError: a file that is not an rtt file.
    @raise OSError: a file that cannot be read.
    """
    times: list[float] = []
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), "*_rtt.csv"))):
        with open(path) as f:
            times += parse_rtt_csv(f.read(), rtd)
    return times


def status_counts(error_log: bytes, min_status: int = 300) -> dict[int, int]:
    """
    Count the SIP status lines quoted in a sipp C{-trace_err} log (the
    unexpected answers, e.g. 480 while the gateway core is missing or 503
    when it sheds load).

    Answers below C{min_status} are not errors: a 202 in that log is the
    answer to a retransmission arriving after its call ended ("Dead call"),
    already counted as a retransmission.

    @return: status code -> number of occurrences.
    """
    return dict(Counter(code for code in map(int, _STATUS_LINE.findall(error_log)) if code >= min_status))


# -- numbers ------------------------------------------------------------------


def percentile(values, p: float) -> float | None:
    """
    Nearest-rank percentile.

    @param values: numbers (any order).
    @param p: 0 < p <= 100.
    @return: the smallest value with at least C{p} % of the values at or
        below it; L{None} for no values.
    """
    if not 0 < p <= 100:
        raise ValueError("percentile %r outside (0, 100]" % (p,))
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


# -- steps and the ladder -------------------------------------------------------


@dataclass
class Step:
    """
    What one ladder step measured.

    @ivar direction: C{"sip->smpp"} or C{"smpp->sip"}.
    @ivar offered: the configured rate (messages/s).
    @ivar sent: messages the load generator sent.
    @ivar delivered: messages that arrived at the far end (SMSC submits or
        MESSAGEs at the sipp UAS).
    @ivar answered: messages the sender saw answered positively (202/200,
        deliver_sm_resp ESME_ROK).
    @ivar elapsed: seconds from the first message to the last answer.
    @ivar retransmissions: SIP retransmissions seen (both ends).
    @ivar timeouts: transactions that got no answer.
    @ivar errors: negative answers, by status (e.g. C{{"480": 3000}}).
    @ivar p50_ms: median answer time, milliseconds (p99_ms likewise).
    @ivar drain_s: smpp->sip: seconds the last MESSAGEs reached the UAS
        after the last deliver_sm_resp (None: not all arrived, or n/a).
    @ivar udp_drops: datagrams the kernel dropped at the receiving SIP
        socket during the step because its buffer was full (sip->smpp: the
        gateway's, smpp->sip: the sipp UAS's; None: not known).  Each one
        comes back as a retransmission.
    @ivar window_held_percent: smpp->sip: % of the simulator's send ticks
        at which messages still waited for room in its window (C{--mo-window}
        outstanding deliver_sm): high means the window, i.e. the gateway's
        deliver_sm -> resp time, not the offered rate, paced the step.
    @ivar box_ms: the box's speed during the step (L{boxspeed.Sampler}:
        the median CPU milliseconds of a fixed loop, larger is slower;
        None: not probed).
    @ivar after_stop: run after the ladder stopped, only so that the
        figures at L{REPORT_RATE} exist in each direction (the issue's
        report); not a ladder step: it never counts as the highest passing.
    """

    direction: str
    offered: float
    sent: int = 0
    delivered: int = 0
    answered: int = 0
    elapsed: float = 0.0
    retransmissions: int = 0
    timeouts: int = 0
    errors: dict = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_percent: float | None = None
    cpu_us_per_msg: float | None = None
    rss_mb: float | None = None
    other_cpu_percent: float | None = None
    sipp_cpu_percent: float | None = None
    drain_s: float | None = None
    udp_drops: int | None = None
    window_held_percent: float | None = None
    cpu_sys_share: float | None = None
    wait_percent: float | None = None
    gc: dict | None = None
    box_ms: float | None = None
    profile: dict | None = None
    passed: bool = False
    reason: str = ""
    after_stop: bool = False

    @property
    def achieved(self) -> float:
        """@return: delivered messages per second of elapsed time."""
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def lost(self) -> int:
        """@return: messages sent that were not delivered, or delivered but not answered."""
        return max(0, self.sent - self.delivered) + max(0, self.delivered - self.answered)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["achieved"] = round(self.achieved, 1)
        d["lost"] = self.lost
        return d


def judge(step: Step, min_fraction: float = MIN_ACHIEVED_FRACTION) -> Step:
    """
    Decide whether a step passed: nothing lost, no retransmission, no
    timeout, no error answer, something delivered, the achieved rate at
    least C{min_fraction} of the offered one, and (smpp->sip) the SIP leg
    not lagging more than C{MAX_DRAIN} s or C{1 - min_fraction} of the
    step behind the acknowledgements.  Sets C{passed} and
    C{reason} (every failed condition, or C{"ok"}).

    @return: C{step}.
    """
    reasons = []
    if step.sent == 0:
        reasons.append("nothing sent")
    if step.errors:
        reasons.append("error answers " + ", ".join(
            "%s x%d" % (code, n) for code, n in sorted(step.errors.items())))
    if step.lost:
        reasons.append("%d lost" % (step.lost,))
    if step.retransmissions:
        reasons.append("%d retransmissions%s" % (step.retransmissions, " (%d datagrams dropped: receive buffer full)"
                                                 % (step.udp_drops,) if step.udp_drops else ""))
    if step.timeouts:
        reasons.append("%d timeouts" % (step.timeouts,))
    if step.drain_s is not None and step.drain_s > max(MAX_DRAIN, (1 - min_fraction) * step.elapsed):
        reasons.append("SIP side %.1f s behind the acks" % (step.drain_s,))
    if step.sent and step.achieved < min_fraction * step.offered:
        reasons.append("achieved %.0f/s < %d%% of offered%s" % (
            step.achieved, round(100 * min_fraction),
            " (simulator window full at %.0f%% of its ticks)" % (step.window_held_percent,)
            if step.window_held_percent and step.window_held_percent >= 10 else ""))
    step.passed = not reasons
    step.reason = "; ".join(reasons) if reasons else "ok"
    return step


def run_ladder(steps, run_step, stop_on_failure: bool = True,
               report_rate: int | None = None) -> list[Step]:
    """
    Run C{run_step(rate)} for each rate in order and stop after the first
    step that fails (the ladder's stop rule).

    @param steps: offered rates, ascending.
    @param run_step: callable returning a judged L{Step}; the step run
        after the stop is C{run_step(rate, after_stop=True)}.
    @param stop_on_failure: when false run every step anyway.
    @param report_rate: when the ladder stopped below this rate and it is
        one of C{steps}, run it once more after the stop (its figures are
        reported in every direction; see L{Step.after_stop}).
    @return: the steps run.
    """
    results = []
    for rate in steps:
        step = run_step(rate)
        results.append(step)
        if stop_on_failure and not step.passed:
            if report_rate is not None and report_rate > rate and report_rate in steps:
                results.append(run_step(report_rate, after_stop=True))
            break
    return results


def highest_passing(results) -> Step | None:
    """@return: the passing step with the highest offered rate, or L{None}."""
    passing = [s for s in results if s.passed and not s.after_stop]
    return max(passing, key=lambda s: s.offered) if passing else None


def parse_steps(text: str) -> tuple[int, ...]:
    """
    Parse C{--steps}: comma-separated rates, C{k} suffix allowed
    (C{"1k,2k,500"}).

    @raise ValueError: naming the bad item.
    """
    rates = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        scale = 1000 if item.endswith("k") else 1
        number = item[:-1] if scale == 1000 else item
        try:
            rate = float(number) * scale
        except ValueError:
            raise ValueError("bad rate %r in --steps" % (item,)) from None
        if rate <= 0 or rate != rate or rate == float("inf"):
            raise ValueError("rate %r in --steps must be > 0" % (item,))
        rates.append(int(round(rate)))
    if not rates:
        raise ValueError("--steps names no rate")
    return tuple(rates)


# -- output -------------------------------------------------------------------

COLUMNS = ("direction", "offered", "achieved", "lost", "retrans", "timeouts", "p50 ms", "p99 ms",
           "gw CPU %", "CPU us/msg", "RSS MB", "sim CPU %", "sipp CPU %", "gw wait %", "max GC ms", "box ms", "result")
#: minimum column widths, so rows printed one at a time line up
WIDTHS = (9, 7, 8, 7, 7, 8, 7, 7, 8, 10, 6, 9, 10, 9, 9, 6)


def _fmt(value, digits=0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def row(step: Step) -> list[str]:
    """@return: the table cells of one step (see L{COLUMNS})."""
    return [
        step.direction, _fmt(int(step.offered)), _fmt(step.achieved), _fmt(step.lost),
        _fmt(step.retransmissions), _fmt(step.timeouts), _fmt(step.p50_ms, 1), _fmt(step.p99_ms, 1),
        _fmt(step.cpu_percent), _fmt(step.cpu_us_per_msg), _fmt(step.rss_mb, 1),
        _fmt(step.other_cpu_percent), _fmt(step.sipp_cpu_percent),
        _fmt(step.wait_percent), _fmt(step.gc["max_ms"] if step.gc else None),
        _fmt(step.box_ms),
        ("after stop, " if step.after_stop else "")
        + ("PASS" if step.passed else "FAIL: " + step.reason),
    ]


def format_table(rows, columns=COLUMNS) -> str:
    """@return: the rows as an aligned text table with a header line."""
    cells = [list(columns)] + [list(r) for r in rows]
    widths = [max([WIDTHS[i] if i < len(WIDTHS) else 0] + [len(r[i]) for r in cells])
              for i in range(len(columns) - 1)]
    lines = []
    for r in cells:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return "\n".join(lines)


def summary(results, at_rate: int = REPORT_RATE) -> dict:
    """
    Per direction: the highest passing step and the CPU µs/message at
    C{at_rate} (when a step offered exactly that rate).

    @return: C{{direction: {"highest_passing": rate|None, "cpu_us_at_8000":
        value|None, "p99_ms_at_8000": value|None, "passed_at_8000":
        bool|None, "after_stop_at_8000": bool|None, "box_ms_at_8000":
        value|None}}} (after_stop: the step ran after the ladder's stop,
        L{Step.after_stop}; box_ms: L{Step.box_ms}).
    """
    out = {}
    for direction in dict.fromkeys(s.direction for s in results):
        mine = [s for s in results if s.direction == direction]
        best = highest_passing(mine)
        at = [s for s in mine if int(s.offered) == at_rate]
        out[direction] = {
            "highest_passing": int(best.offered) if best else None,
            "cpu_us_at_%d" % at_rate: at[0].cpu_us_per_msg if at else None,
            "p99_ms_at_%d" % at_rate: at[0].p99_ms if at else None,
            "passed_at_%d" % at_rate: at[0].passed if at else None,
            "after_stop_at_%d" % at_rate: at[0].after_stop if at else None,
            "box_ms_at_%d" % at_rate: at[0].box_ms if at else None,
        }
    return out


def summary_line(direction: str, figures: dict, at_rate: int = REPORT_RATE) -> str:
    """
    One line of L{summary} for the report: the highest passing step, and
    the CPU per message and p99 at C{at_rate} (and the box's speed then,
    when probed), or why there is none.
    """
    line = "%s: highest passing step %s msg/s; " % (direction,
                                                    figures["highest_passing"] or "none")
    if figures["passed_at_%d" % at_rate] is None:
        return line + ("no step at %d msg/s (not in --steps, or the run was cut short;"
                       " --all-steps runs every step)" % at_rate)
    return line + "at %d msg/s: %s us CPU/msg, p99 %s ms (%s%s)" % (
        at_rate, _fmt(figures["cpu_us_at_%d" % at_rate], 1),
        _fmt(figures["p99_ms_at_%d" % at_rate], 1),
        "passed" if figures["passed_at_%d" % at_rate] else "failed",
        ", run after the ladder stopped" if figures.get("after_stop_at_%d" % at_rate) else "") + (
        "" if figures.get("box_ms_at_%d" % at_rate) is None
        else ", box %s ms" % _fmt(figures["box_ms_at_%d" % at_rate]))
