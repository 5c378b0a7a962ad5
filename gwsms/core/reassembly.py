# -*- test-case-name: tests.test_core_text -*-
"""
Reassembly of concatenated mobile-originated messages: a pure state object
(no I/O, no clock: the caller passes C{now}), serialisable to JSON-ready
dicts so the durable store can persist it and rebuild it after a restart.

Typical use, per received deliver_sm::

    part = text.mo_part(pdu.params["short_message"], dc, esm, pdu.tlvs)
    if part.is_single:
        deliver(part.decode(link.dc0_charset))
    else:
        key = (link.name, source_addr, destination_addr, part.ref)
        message = reassembler.add(key, part.seq, part.total, part.payload,
                                  part.data_coding, now)
        if message is not None:
            deliver(message.decode(link.dc0_charset))

and periodically C{for m in reassembler.expired(now, timeout): ...}.

L{gwsms.core.text} re-exports L{Reassembler} and L{Message}.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from gwsms.core import inbound

_STATE_VERSION = 1


@dataclass(frozen=True)
class Message:
    """
    A reassembled (or, when C{partial}, incomplete) message.

    @ivar key: the caller's key fields plus the total, e.g. C{(link,
        source_addr, destination_addr, ref, total)}.
    @ivar total: parts the message announced.
    @ivar segments: C{(index, payload, data_coding)} of the parts received,
        by index.
    @ivar partial: some parts are missing (expired or evicted).
    @ivar first_seen: C{now} when the first part arrived.
    """

    key: tuple
    total: int
    segments: tuple
    partial: bool
    first_seen: float

    @property
    def payload(self) -> bytes:
        """@return: the received payloads concatenated in order."""
        return b"".join(segment[1] for segment in self.segments)

    @property
    def data_coding(self) -> int:
        """@return: the data_coding of the first part received."""
        return self.segments[0][2]

    @property
    def parts(self) -> tuple:
        """@return: indexes of the parts received."""
        return tuple(segment[0] for segment in self.segments)

    @property
    def missing(self) -> tuple:
        """@return: indexes of the parts that never arrived."""
        have = set(self.parts)
        return tuple(i for i in range(1, self.total + 1) if i not in have)

    def decode(self, dc0_charset: str = "gsm", gap: str = "") -> inbound.Decoded:
        """
        Decode the message after concatenating the payloads, so a character
        split across parts (UCS-2 mid character, GSM escape pair) decodes
        right.  Runs of consecutive parts with the same data_coding are
        decoded separately (a missing part or a coding change starts a new
        run) and joined with C{gap}.

        @param dc0_charset: what data_coding 0 means on the link.
        @param gap: text put where parts are missing or the coding changes.
        @return: a L{inbound.Decoded}; binary (C{text=None}) if any run is.
        """
        runs: list[list] = []
        previous = None
        for index, payload, data_coding in self.segments:
            if runs and previous == (index - 1, data_coding):
                runs[-1][1].append(payload)
            else:
                runs.append([data_coding, [payload]])
            previous = (index, data_coding)
        decoded = [
            inbound.decode_payload(b"".join(payloads), data_coding, dc0_charset)
            for data_coding, payloads in runs
        ]
        first = decoded[0]
        if any(d.binary for d in decoded):
            return inbound.Decoded(None, self.payload, None, True, "binary", False,
                                   first.message_class)
        text = gap.join(d.text for d in decoded)
        if self.partial and self.segments[0][0] != 1:
            text = gap + text
        if self.partial and self.segments[-1][0] != self.total:
            text = text + gap
        return inbound.Decoded(text, self.payload, None, False, first.charset, False,
                               first.message_class)


class _Pending:
    __slots__ = ("key", "total", "first_seen", "parts")

    def __init__(self, key: tuple, total: int, first_seen: float) -> None:
        self.key = key
        self.total = total
        self.first_seen = first_seen
        self.parts: dict[int, tuple[bytes, int]] = {}

    def message(self, partial: bool) -> Message:
        segments = tuple((i, *self.parts[i]) for i in sorted(self.parts))
        return Message(self.key, self.total, segments, partial, self.first_seen)


def _check_key(key_fields) -> tuple:
    key = tuple(key_fields)
    for value in key:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError(f"key fields must be str or int, not {value!r}")
    return key


class Reassembler:
    """
    Partial messages keyed by the caller's key fields plus the total.

    Keep one per gateway (or per link); it is not thread-safe and needs no
    reactor.  Memory is bounded by C{max_pending}: when a new message would
    exceed it, the oldest incomplete one is evicted and handed back by the
    next L{expired} call, marked partial.

    @ivar duplicate_window: seconds a completed key is remembered, so that a
        part the SMSC sends again after the message completed (our resp was
        lost) is dropped instead of starting a new message that would expire
        as a partial duplicate.  0 disables it (the default), since a
        sender may legitimately reuse a reference.
    """

    def __init__(self, max_pending: int = 10000, duplicate_window: float = 0.0) -> None:
        """
        @param max_pending: most incomplete messages held.
        @param duplicate_window: see the class docstring.
        """
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.duplicate_window = duplicate_window
        self._pending: dict[tuple, _Pending] = {}
        self._evicted: list[Message] = []
        self._recent: dict[tuple, float] = {}
        self.duplicates = 0

    def __len__(self) -> int:
        """@return: number of incomplete messages held."""
        return len(self._pending)

    def add(self, key_fields, part_index: int, total: int, payload: bytes,
            data_coding: int, now: float) -> Message | None:
        """
        Add one part.

        @param key_fields: str/int values identifying the message apart from
            the total, e.g. C{(link_name, source_addr, destination_addr, ref)}.
        @param part_index: this part's number, 1-based.
        @param total: number of parts announced (1-255).
        @param payload: the part's user data without UDH (L{inbound.MoPart.payload}).
        @param data_coding: the part's data_coding.
        @param now: current time in seconds.
        @return: the complete L{Message} when this part completes it, else
            C{None} (also for a duplicate part, which changes nothing).
        @raise ValueError: for a bad index, total or key.
        """
        if not 1 <= total <= 255:
            raise ValueError(f"total must be 1-255, not {total}")
        if not 1 <= part_index <= total:
            raise ValueError(f"part index must be 1-{total}, not {part_index}")
        key = _check_key(key_fields) + (total,)
        payload = bytes(payload)
        if total == 1:
            return Message(key, 1, ((1, payload, data_coding),), False, now)
        completed = self._recent.get(key)
        if completed is not None and now - completed <= self.duplicate_window:
            self.duplicates += 1
            return None
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                oldest = next(iter(self._pending))
                self._evicted.append(self._pending.pop(oldest).message(True))
            pending = self._pending[key] = _Pending(key, total, now)
        if part_index in pending.parts:
            self.duplicates += 1
            return None
        pending.parts[part_index] = (payload, data_coding)
        if len(pending.parts) < total:
            return None
        del self._pending[key]
        if self.duplicate_window > 0:
            self._recent[key] = now
        return pending.message(False)

    def expired(self, now: float, timeout: float) -> list[Message]:
        """
        Remove and return incomplete messages whose first part arrived at
        least C{timeout} seconds ago, plus any evicted for space, marked
        C{partial}; also forgets completed keys older than
        C{duplicate_window}.

        @param now: current time in seconds.
        @param timeout: seconds to wait for the missing parts.
        @return: the incomplete messages, oldest first.
        """
        out = self._evicted
        self._evicted = []
        for key, pending in list(self._pending.items()):
            if now - pending.first_seen >= timeout:
                del self._pending[key]
                out.append(pending.message(True))
        for key, completed in list(self._recent.items()):
            if now - completed > self.duplicate_window:
                del self._recent[key]
        return out

    def to_state(self) -> dict:
        """
        @return: the whole state as a dict of JSON-serialisable values
            (payloads base64), for L{from_state}.
        """
        def entry(key, total, first_seen, parts):
            return {
                "key": list(key[:-1]),
                "total": total,
                "first_seen": first_seen,
                "parts": [
                    {"index": i, "data_coding": dc,
                     "payload": base64.b64encode(payload).decode("ascii")}
                    for i, (payload, dc) in sorted(parts.items())
                ],
            }

        return {
            "version": _STATE_VERSION,
            "pending": [entry(p.key, p.total, p.first_seen, p.parts)
                        for p in self._pending.values()],
            "evicted": [entry(m.key, m.total, m.first_seen,
                              {i: (payload, dc) for i, payload, dc in m.segments})
                        for m in self._evicted],
            "recent": [{"key": list(key[:-1]), "total": key[-1], "completed": when}
                       for key, when in self._recent.items()],
        }

    @classmethod
    def from_state(cls, state: dict, max_pending: int = 10000,
                   duplicate_window: float = 0.0) -> "Reassembler":
        """
        Rebuild a reassembler from L{to_state} output (possibly after a JSON
        round trip).

        @param state: the dict.
        @param max_pending: see L{__init__}.
        @param duplicate_window: see L{__init__}.
        @return: the reassembler.
        @raise ValueError: naming what is wrong with C{state}.
        """
        self = cls(max_pending, duplicate_window)
        try:
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"unsupported version {state.get('version')!r}")
            for name in ("pending", "evicted"):
                for item in state.get(name, []):
                    total = int(item["total"])
                    key = _check_key(item["key"]) + (total,)
                    pending = _Pending(key, total, float(item["first_seen"]))
                    for part in item["parts"]:
                        index = int(part["index"])
                        if not 1 <= index <= total:
                            raise ValueError(f"part index {index} outside 1-{total}")
                        payload = base64.b64decode(part["payload"], validate=True)
                        pending.parts[index] = (payload, int(part["data_coding"]))
                    if not pending.parts:
                        raise ValueError("an entry without parts")
                    if name == "pending":
                        self._pending[key] = pending
                    else:
                        self._evicted.append(pending.message(True))
            for item in state.get("recent", []):
                key = _check_key(item["key"]) + (int(item["total"]),)
                self._recent[key] = float(item["completed"])
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ValueError(f"bad reassembly state: {e}") from None
        return self
