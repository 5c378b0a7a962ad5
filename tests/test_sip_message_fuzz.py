# -*- test-case-name: tests.test_sip_message_fuzz -*-
"""
Deterministic mutation fuzzing of the SIP message codec: mutated corpus
messages go through L{parse_message} and L{StreamParser}; the only thing
allowed out is a L{SipParseError} or a valid message (whose parsed views
also raise nothing but L{SipParseError}, and which serialises and parses
back to itself).
"""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from gwsms.sip.message import (
    Headers,
    KeepAlive,
    Message,
    Request,
    Response,
    SipParseError,
    StreamParser,
    make_response,
    parse_message,
)
from tests.test_sip_message import CORPUS

_SEEDS = list(CORPUS.values())
_SPECIAL = [b",", b";", b"<", b">", b'"', b"\\", b":", b"[", b"]", b"%", b" ", b"\t",
            b"\r", b"\n", b"\r\n", b"\r\n ", b"\x00", b"\xff", b"=", b"@", b"?", b"&",
            b"/", b"*", b"\r\n\r\n", b"\xc3", b"%zz", b"SIP/2.0"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """
    Apply one to three random mutations to C{data}.

    @param rng: the seeded random source.
    @param data: a valid message.
    @return: the mutated bytes.
    """
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(9)
        n = len(data)
        if kind == 0 and n:  # byte flips
            buf = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(n)] = rng.randrange(256)
            data = bytes(buf)
        elif kind == 1:  # truncation
            data = data[: rng.randrange(n + 1)]
        elif kind in (2, 3):  # duplicated / removed / swapped lines
            lines = data.split(b"\r\n")
            if len(lines) > 1:
                i = rng.randrange(len(lines))
                op = rng.randrange(3)
                if op == 0:
                    lines.insert(i, lines[i])
                elif op == 1:
                    del lines[i]
                else:
                    j = rng.randrange(len(lines))
                    lines[i], lines[j] = lines[j], lines[i]
            data = b"\r\n".join(lines)
        elif kind == 4:  # Content-Length games
            value = rng.choice([b"99999999999", b"4294967296", b"-1", b"1e3", b"", b" 0 ",
                                str(rng.randrange(0, 70000)).encode(), b"0x10", b"\xd9\xa3"])
            for name in (b"Content-Length: ", b"l: "):
                at = data.find(b"\r\n" + name)
                if at >= 0:
                    end = data.find(b"\r\n", at + 2 + len(name))
                    if end >= 0:
                        data = data[: at + 2 + len(name)] + value + data[end:]
                    break
        elif kind == 5:  # garbage
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
            at = rng.randrange(n + 1)
            data = data[:at] + junk + data[at:]
        elif kind == 6:  # syntax characters
            at = rng.randrange(n + 1)
            data = data[:at] + rng.choice(_SPECIAL) + data[at:]
        elif kind == 7 and n:  # delete a span
            at = rng.randrange(n)
            data = data[:at] + data[at + rng.randint(1, 20):]
        else:  # two messages glued / leading CRLFs
            data = rng.choice([b"\r\n", b"\r\n\r\n", b""]) + data + rng.choice(_SEEDS)[: rng.randrange(200)]
    return data


def check_message(test: SynchronousTestCase, msg: Message) -> None:
    """
    Every parsed view of C{msg} either works or raises L{SipParseError};
    a message whose views all work round-trips through bytes.
    """
    views = ("top_via", "vias", "from_", "to", "contacts", "cseq", "max_forwards",
             "expires", "call_id", "content_type")
    ok = True
    for name in views:
        try:
            getattr(msg, name)
        except SipParseError:
            ok = False
    if isinstance(msg, Request):
        try:
            msg.request_uri  # noqa: B018
        except SipParseError:
            ok = False
        try:
            make_response(msg, 200, to_tag="t").to_bytes()
        except SipParseError:
            ok = False
    for name in ("Via", "Contact", "Route", "Record-Route", "Accept", "WWW-Authenticate"):
        msg.headers.get_all(name)
    data = msg.to_bytes()
    if ok:
        again = parse_message(data, max_size=None)
        test.assertEqual(again, msg)


def _signature(item: object) -> object:
    if isinstance(item, SipParseError):
        return ("error", item.status, item.reason)
    if isinstance(item, Message):
        return ("message", item.to_bytes())
    return item


class FuzzTests(SynchronousTestCase):
    """
    Deterministic fuzz runs: 4 x 25,000 mutated messages as datagrams and
    the same messages, in random chunks, on streams.
    """

    count = 25000

    def run_fuzz(self, seed: int) -> None:
        rng = random.Random(seed)
        parsed = errors = 0
        batch: list[bytes] = []
        for _ in range(self.count):
            data = mutate(rng, rng.choice(_SEEDS))
            try:
                msg = parse_message(data)
            except SipParseError as e:
                self.assertIsInstance(e.status, int)
                self.assertTrue(400 <= e.status <= 599)
                self.assertIsInstance(e.reason, str)
                self.assertFalse("\r" in e.reason or "\n" in e.reason, e.reason)
                errors += 1
            else:
                parsed += 1
                check_message(self, msg)
            batch.append(data)
            if len(batch) == 10:
                self.run_stream(rng, b"".join(batch))
                batch = []
        # the mutations must exercise both outcomes substantially
        self.assertGreater(parsed, self.count // 20)
        self.assertGreater(errors, self.count // 4)

    def run_stream(self, rng: random.Random, data: bytes) -> None:
        """
        Feed C{data} in random pieces: only messages, keep-alives and
        errors come out, the buffer stays bounded, and the items are the
        same as when the whole of C{data} is fed at once.
        """
        max_size = rng.choice([2048, 65535])
        parser = StreamParser(max_size=max_size)
        items = []
        pos = 0
        while pos < len(data):
            size = rng.choice([1, 2, 3, 7, 64, 500, 4096])
            for item in parser.feed(data[pos : pos + size]):
                if not isinstance(item, (Message, SipParseError, KeepAlive)):
                    self.fail(f"unexpected item {item!r}")
                items.append(item)
            pos += size
            self.assertLessEqual(parser.buffered, parser.max_size + 4096)
        whole = StreamParser(max_size=max_size).feed(data)
        self.assertEqual([_signature(i) for i in items], [_signature(i) for i in whole])
        # messages glued from pieces differ from the datagrams: check them too
        for item in items[:: rng.choice([1, 3])]:
            if isinstance(item, Message):
                check_message(self, item)

    def test_fuzz_seed_1(self) -> None:
        self.run_fuzz(1)

    def test_fuzz_seed_2(self) -> None:
        self.run_fuzz(2)

    def test_fuzz_seed_3(self) -> None:
        self.run_fuzz(3)

    def test_fuzz_seed_4(self) -> None:
        self.run_fuzz(4)

    def test_build_round_trip(self) -> None:
        """
        5,000 random messages built through the API (random header names
        and UTF-8 values with commas, quotes and <>, random binary bodies)
        serialise and parse back equal, as datagrams and on a stream.
        """
        rng = random.Random(77)
        alphabet = "abcXYZ019 ,;:<>\"'=@%/-_.!~*()&+$?[]\\\t\u00e9\u20ac\U0001F600"
        token = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
        base = parse_message(CORPUS["options_ping"])
        stream = StreamParser()
        for i in range(5000):
            headers = Headers(base.headers)
            for _ in range(rng.randint(0, 6)):
                name = "X-" + "".join(rng.choice(token) for _ in range(rng.randint(1, 12)))
                value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
                headers.add(name, value)
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            if rng.random() < 0.5:
                headers.set("CSeq", "10 MESSAGE")
                msg: Message = Request("MESSAGE", "sip:+49%d@gw.example.net" % i, headers, body)
            else:
                status = rng.randint(100, 699)
                reason = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))).strip()
                msg = Response(status, reason, headers, body)
            data = msg.to_bytes()
            self.assertEqual(parse_message(data), msg)
            self.assertEqual(stream.feed(data[:7]) + stream.feed(data[7:]), [msg])

    def test_deterministic(self) -> None:
        """
        The same seed gives the same mutations.
        """
        a = [mutate(random.Random(9), s) for s in _SEEDS]
        b = [mutate(random.Random(9), s) for s in _SEEDS]
        self.assertEqual(a, b)
