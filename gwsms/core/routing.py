# -*- test-case-name: tests.test_core_routing -*-
"""
Message routing: which SMSC connection carries an MT message (SIP -> SMPP)
and which SIP URI receives an MO message (SMPP -> SIP).

A L{Route} is one row of the C{routes} table; a L{RoutingTable} is built
from all of them once per (re)load and answers look-ups without I/O.

Prefixes are matched against the normalised number: international digits
without C{+} (as L{gwsms.core.numbers} produces them; a leading C{+} on a
prefix or a looked-up number is ignored) or, for an alphanumeric address,
the raw string, case-sensitively.  The empty prefix matches everything: it
is the default route.

MT (L{RoutingTable.mt_candidates}) orders the SMSC names to try:

  1. routes of the B{longest} matching destination prefix first;
  2. within one prefix, routes whose C{source_prefix} matches the source
     and is longer first (C{""} matches any source and comes last);
  3. then priority groups, lower C{priority} first;
  4. within one priority group the order rotates on every look-up, so the
     SMSCs of a group share the load round-robin;
  5. then, as a failover, the routes of the next shorter matching prefix,
     ordered the same way, down to the default route (pass
     C{fallback=False} to get only the longest match); a name already
     listed is not repeated.

The caller (the gateway) tries them in order, skipping connections whose
bind is down; an empty list means no route at all (SIP 404).
L{RoutingTable.mt_route} gives the L{Route} behind one of those names (for
its C{registered_delivery}) without moving the round-robin.

MO (L{RoutingTable.mo_target}) considers the C{mo} routes whose C{smsc} is
C{""} or the connection the message arrived on, and picks the longest
destination prefix, then the longest matching source prefix, then a route
naming that SMSC over one for any SMSC, then the lowest priority, then the
lowest id.

Pure code: no I/O, no reactor.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

__all__ = [
    "MT",
    "MO",
    "DIRECTIONS",
    "MAX_PREFIX_LENGTH",
    "MAX_SMSC_LENGTH",
    "MAX_SIP_URI_LENGTH",
    "Route",
    "RoutingTable",
    "normalise_prefix",
]

#: SIP -> SMPP
MT = "mt"
#: SMPP -> SIP
MO = "mo"
DIRECTIONS = (MT, MO)

MAX_PREFIX_LENGTH = 32
#: the longest SMSC connection name (as L{gwsms.smpp.link.SmscLink} allows)
MAX_SMSC_LENGTH = 64
MAX_SIP_URI_LENGTH = 255
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1
#: the largest SMPP registered_delivery value (bits 0-4)
REGISTERED_DELIVERY_MAX = 0x1F

_PREFIX_RE = re.compile(r"[0-9A-Za-z]*\Z")


def normalise_prefix(text: str) -> str:
    """
    A prefix or number as matched by the table: a single leading C{+} is
    dropped.

    @param text: a prefix or number.
    @return: the text without its leading C{+}.
    """
    return text[1:] if text.startswith("+") else text


def _prefix_problem(what: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"{what} must be a string"
    if len(value) > MAX_PREFIX_LENGTH:
        return f"{what} {value!r} longer than {MAX_PREFIX_LENGTH} characters"
    if not _PREFIX_RE.match(value):
        return f"{what} {value!r} may only hold digits and letters (a leading '+' is dropped)"
    return None


def _sip_uri_problem(uri: str) -> str | None:
    if not uri:
        return "an mo route needs a sip_uri (sip: or sips: URI)"
    if len(uri) > MAX_SIP_URI_LENGTH:
        return f"sip_uri longer than {MAX_SIP_URI_LENGTH} characters"
    if any(c.isspace() for c in uri):
        return f"sip_uri {uri!r} must not contain white space"
    if not uri[:5].lower().startswith(("sip:", "sips:")):
        return f"sip_uri {uri!r} is not a sip: or sips: URI"
    from gwsms.sip.headers import SipParseError
    from gwsms.sip.uri import SipURI

    try:
        parsed = SipURI.parse(uri)
    except SipParseError as e:
        return f"sip_uri {uri!r} is malformed: {e.reason}"
    if not parsed.host:
        return f"sip_uri {uri!r} has no host"
    return None


@dataclass(frozen=True)
class Route:
    """
    One routing rule (a row of the C{routes} table).

    Construction validates and normalises (a leading C{+} is dropped from
    both prefixes, C{direction} is lower-cased); bad values raise
    C{ValueError} naming every problem.

    @ivar id: row id, None before it is stored.
    @ivar direction: L{MT} (SIP -> SMPP) or L{MO} (SMPP -> SIP).
    @ivar prefix: destination prefix; C{""} = default route.
    @ivar source_prefix: source prefix; C{""} = any source.
    @ivar smsc: MT: the SMSC connection name to use (required); MO: only
        messages that arrived on this connection (C{""} = any).
    @ivar sip_uri: MO: the target URI (required); MT: C{""}.
    @ivar priority: lower is preferred; equal priorities share the load.
    @ivar registered_delivery: MT: the SMPP C{registered_delivery} for
        messages taking this route (0-31); None: the C{[gateway]
        registered_delivery} setting.  MO routes take None.
    @ivar created: UNIX time the row was stored (not compared).
    """

    id: int | None = None
    direction: str = MT
    prefix: str = ""
    source_prefix: str = ""
    smsc: str = ""
    sip_uri: str = ""
    priority: int = 0
    created: float | None = dataclasses.field(default=None, compare=False)
    registered_delivery: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.direction, str):
            object.__setattr__(self, "direction", self.direction.strip().lower())
        for key in ("prefix", "source_prefix"):
            value = getattr(self, key)
            if isinstance(value, str):
                object.__setattr__(self, key, normalise_prefix(value))
        problems = self.problems()
        if problems:
            raise ValueError("route: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """
        @return: human-readable problems with the values (empty when valid).
        """
        out = []
        if self.direction not in DIRECTIONS:
            out.append(f"direction must be 'mt' or 'mo', not {self.direction!r}")
        for key in ("prefix", "source_prefix"):
            problem = _prefix_problem(key, getattr(self, key))
            if problem:
                out.append(problem)
        if not isinstance(self.smsc, str) or not isinstance(self.sip_uri, str):
            out.append("smsc and sip_uri must be strings")
            return out
        if len(self.smsc) > MAX_SMSC_LENGTH:
            out.append(f"smsc name longer than {MAX_SMSC_LENGTH} characters")
        if self.direction == MT:
            if not self.smsc:
                out.append("an mt route needs an smsc (the connection name)")
            if self.sip_uri:
                out.append("an mt route takes no sip_uri")
        elif self.direction == MO:
            problem = _sip_uri_problem(self.sip_uri)
            if problem:
                out.append(problem)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            out.append(f"priority must be an integer, not {self.priority!r}")
        elif not PRIORITY_MIN <= self.priority <= PRIORITY_MAX:
            out.append(f"priority {self.priority} out of range")
        rd = self.registered_delivery
        if rd is not None:
            if isinstance(rd, bool) or not isinstance(rd, int) \
                    or not 0 <= rd <= REGISTERED_DELIVERY_MAX:
                out.append(f"registered_delivery {rd!r} must be 0-{REGISTERED_DELIVERY_MAX}"
                           " (or unset for the [gateway] setting)")
            elif self.direction == MO:
                out.append("an mo route takes no registered_delivery")
        return out

    def replace(self, **changes) -> "Route":
        """A copy with C{changes} applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def matches_source(self, source: str) -> bool:
        """Whether C{source} (normalised) starts with this route's source prefix."""
        return source.startswith(self.source_prefix)


def _sort_id(route: Route) -> int:
    return route.id if route.id is not None else -1


class _Group:
    """Routes of one prefix sharing a source prefix and a priority."""

    __slots__ = ("source_prefix", "priority", "names", "turns")

    def __init__(self, source_prefix: str, priority: int, names: tuple[str, ...]):
        self.source_prefix = source_prefix
        self.priority = priority
        self.names = names
        #: look-ups that used this group (for per-group round-robin)
        self.turns = 0


class RoutingTable:
    """
    All routes, indexed for look-ups in O(length of the number).

    Build a new table on every reload: its routes never change (only the
    round-robin counters move).
    """

    def __init__(self, routes: Iterable[Route] = (), rotate: Iterator[int] | None = None):
        """
        @param routes: the L{Route}s (both directions).
        @param rotate: how priority groups rotate.  None (the default): one
            counter per group, so a group's SMSCs take turns even when
            look-ups for other prefixes are interleaved.  Otherwise an
            iterator of ints (e.g. C{itertools.count()}), one drawn per
            L{mt_candidates} call and used as the rotation offset of every
            group; C{itertools.repeat(0)} gives a fixed order (tests).
        """
        self._routes = tuple(routes)
        self._rotate = rotate
        mt: dict[str, list[Route]] = defaultdict(list)
        mo: dict[str, list[Route]] = defaultdict(list)
        for route in self._routes:
            (mt if route.direction == MT else mo)[route.prefix].append(route)
        #: prefix -> groups in preference order
        self._mt: dict[str, list[_Group]] = {}
        #: prefix -> mt routes in preference order (for mt_route)
        self._mt_routes: dict[str, list[Route]] = mt
        #: whether any mt route sets registered_delivery
        self.has_registered_delivery = any(
            r.registered_delivery is not None for rs in mt.values() for r in rs)
        for prefix, rs in mt.items():
            rs.sort(key=lambda r: (-len(r.source_prefix), r.source_prefix, r.priority, _sort_id(r)))
            groups = []
            for (sp, prio), members in itertools.groupby(rs, key=lambda r: (r.source_prefix, r.priority)):
                names = tuple(dict.fromkeys(r.smsc for r in members))
                groups.append(_Group(sp, prio, names))
            self._mt[prefix] = groups
        #: prefix -> mo routes in preference order (smsc filter applied at look-up)
        self._mo: dict[str, list[Route]] = {
            prefix: sorted(
                rs,
                key=lambda r: (-len(r.source_prefix), 0 if r.smsc else 1, r.priority, _sort_id(r)),
            )
            for prefix, rs in mo.items()
        }
        self._mt_lengths = sorted({len(p) for p in self._mt}, reverse=True)
        self._mo_lengths = sorted({len(p) for p in self._mo}, reverse=True)

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route the table was built from, in the order given."""
        return self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"<RoutingTable {sum(1 for r in self._routes if r.direction == MT)} mt, " \
               f"{sum(1 for r in self._routes if r.direction == MO)} mo>"

    @staticmethod
    def _matching(index: dict, lengths: list[int], number: str) -> Iterator:
        """The index entries whose prefix starts C{number}, longest first."""
        for length in lengths:
            if length > len(number):
                continue
            entry = index.get(number[:length])
            if entry is not None:
                yield entry

    def mt_candidates(self, destination: str, source: str = "", fallback: bool = True) -> list[str]:
        """
        The SMSC connection names to try for an MT message, best first
        (see the module docstring for the order).

        @param destination: the normalised destination number.
        @param source: the normalised source address (C{""}: unknown; only
            routes without a source prefix match).
        @param fallback: also list the routes of shorter matching prefixes
            after those of the longest one (failover); False: only the
            longest matching prefix.
        @return: names without duplicates; empty when no route matches.
        """
        # (normalise_prefix and _matching inline: once per MT message)
        if destination[:1] == "+":
            destination = destination[1:]
        if source[:1] == "+":
            source = source[1:]
        offset = None if self._rotate is None else next(self._rotate)
        out: dict[str, None] = {}
        index = self._mt
        size = len(destination)
        for length in self._mt_lengths:
            if length > size:
                continue
            groups = index.get(destination[:length])
            if groups is None:
                continue
            used = False
            for group in groups:
                if not source.startswith(group.source_prefix):
                    continue
                used = True
                names = group.names
                if len(names) > 1:
                    if offset is None:
                        turn = group.turns
                        group.turns = (turn + 1) % len(names)
                    else:
                        turn = offset
                    k = turn % len(names)
                    names = names[k:] + names[:k]
                for name in names:
                    out.setdefault(name, None)
            if used and not fallback:
                break
        return list(out)

    def mt_route(self, destination: str, source: str = "", smsc: str = "") -> Route | None:
        """
        The MT route that puts C{smsc} in L{mt_candidates} for this
        message: the first route naming C{smsc} in the order of the module
        docstring (longest destination prefix, then longest matching source
        prefix, then lowest priority, then lowest id).  Does not rotate.

        @param destination: the normalised destination number.
        @param source: the normalised source address.
        @param smsc: a connection name from L{mt_candidates}.
        @return: that L{Route}, or None when no route for it matches.
        """
        destination = normalise_prefix(destination)
        source = normalise_prefix(source)
        for routes in self._matching(self._mt_routes, self._mt_lengths, destination):
            for route in routes:
                if route.smsc == smsc and source.startswith(route.source_prefix):
                    return route
        return None

    def mo_candidates(self, destination: str, source: str = "", smsc: str = "") -> list[str]:
        """
        The SIP URIs matching an MO message, best first: the order of
        L{mo_target}, then shorter prefixes (no rotation; duplicates
        removed).

        @param destination: the normalised destination number.
        @param source: the normalised source address.
        @param smsc: the name of the connection the message arrived on.
        """
        destination = normalise_prefix(destination)
        source = normalise_prefix(source)
        out: dict[str, None] = {}
        for routes in self._matching(self._mo, self._mo_lengths, destination):
            for route in routes:
                if route.smsc and route.smsc != smsc:
                    continue
                if not source.startswith(route.source_prefix):
                    continue
                out.setdefault(route.sip_uri, None)
        return list(out)

    def mo_target(self, destination: str, source: str = "", smsc: str = "") -> str | None:
        """
        The SIP URI an MO message goes to by route.

        @param destination: the normalised destination number.
        @param source: the normalised source address.
        @param smsc: the name of the connection the message arrived on.
        @return: the C{sip_uri} of the best matching C{mo} route, or None.
        """
        destination = normalise_prefix(destination)
        source = normalise_prefix(source)
        for routes in self._matching(self._mo, self._mo_lengths, destination):
            for route in routes:
                if route.smsc and route.smsc != smsc:
                    continue
                if source.startswith(route.source_prefix):
                    return route.sip_uri
        return None
