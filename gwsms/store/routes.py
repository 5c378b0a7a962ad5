# -*- test-case-name: tests.test_store_routes -*-
"""
The C{routes} table: one row per routing rule, mapped to
L{gwsms.core.routing.Route}.
"""

from __future__ import annotations

import time

from twisted.internet import defer
from twisted.logger import Logger

from gwsms.core.routing import DIRECTIONS, Route, RoutingTable

#: table columns (C{registered_delivery}: -1 in the table for None)
COLUMNS = ("id", "direction", "prefix", "source_prefix", "smsc", "sip_uri", "priority", "created",
           "registered_delivery")
_DATA_COLUMNS = COLUMNS[1:]

_SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM routes"
_ORDER = " ORDER BY direction, prefix, source_prefix, priority, id"


class DuplicateRoute(ValueError):
    """The same route (direction, prefixes, smsc, sip_uri) is already stored."""

    def __init__(self, route: Route, existing_id: int | None = None):
        where = f" (id {existing_id})" if existing_id is not None else ""
        super().__init__(f"{describe(route)} already exists{where}")
        self.route = route
        self.existing_id = existing_id


def describe(route: Route) -> str:
    """
    A one-line description of C{route} for messages, e.g.
    C{mt route 49* -> smsc 'de'}.
    """
    text = f"{route.direction} route {route.prefix}*"
    if route.source_prefix:
        text += f" from {route.source_prefix}*"
    if route.direction == "mt":
        text += f" -> smsc {route.smsc!r}"
    else:
        if route.smsc:
            text += f" via smsc {route.smsc!r}"
        text += f" -> {route.sip_uri}"
    return text


def row_to_route(row: tuple) -> Route:
    """
    Build a L{Route} from a row selected in C{COLUMNS} order.

    @raise ValueError: the row holds values Route refuses.
    """
    values = dict(zip(COLUMNS, row))
    for key in ("prefix", "source_prefix", "smsc", "sip_uri"):
        if values[key] is None:
            values[key] = ""
    values["priority"] = int(values["priority"])
    values["created"] = float(values["created"]) if values["created"] is not None else None
    rd = values["registered_delivery"]
    values["registered_delivery"] = None if rd is None or int(rd) < 0 else int(rd)
    return Route(**values)


def route_to_params(route: Route) -> tuple:
    """The values of C{route} in C{_DATA_COLUMNS} order, as SQL parameters."""
    out = []
    for column in _DATA_COLUMNS:
        value = getattr(route, column)
        if column == "registered_delivery" and value is None:
            value = -1
        out.append(value)
    return tuple(out)


class RouteStore:
    """
    CRUD for routing rules.  Every method returns a Deferred.
    """

    _log = Logger()

    def __init__(self, db, clock=None):
        """
        @param db: a L{gwsms.store.database.Database}.
        @param clock: an C{IReactorTime} whose C{seconds()} fills the
            C{created} column; None: the system time.
        """
        self._db = db
        self._now = time.time if clock is None else clock.seconds

    # -- reads -------------------------------------------------------------

    def list_with_problems(self, direction: str | None = None) -> defer.Deferred:
        """
        @param direction: C{"mt"}, C{"mo"} or None for both.
        @return: Deferred firing with C{(routes, problems)}: the valid rows
            as L{Route}s (ordered by direction, prefix, source prefix,
            priority, id) and one message per row Route refused.
        """
        try:
            where, params = self._where_direction(direction)
        except ValueError as e:
            return defer.fail(e)

        def interaction(txn):
            return txn.execute(_SELECT + where + _ORDER, params).fetchall()

        def convert(rows):
            routes, problems = [], []
            for row in rows:
                try:
                    routes.append(row_to_route(row))
                except (ValueError, TypeError) as e:
                    problems.append(f"routes row id={row[0]}: {e}")
            return routes, problems

        return self._db.run_interaction("routes_list", interaction).addCallback(convert)

    def list(self, direction: str | None = None) -> defer.Deferred:
        """
        @param direction: C{"mt"}, C{"mo"} or None for both.
        @return: Deferred firing with the valid rows as L{Route}s (see
            L{list_with_problems}); invalid rows are logged and left out.
            Fails with ValueError for an unknown direction.
        """

        def log_problems(result):
            routes, problems = result
            for problem in problems:
                self._log.error("ignoring invalid route row: {problem}", problem=problem)
            return routes

        return self.list_with_problems(direction).addCallback(log_problems)

    def load_table(self, rotate=None) -> defer.Deferred:
        """
        @param rotate: passed to L{RoutingTable}.
        @return: Deferred firing with a L{RoutingTable} of every valid row.
        """
        return self.list().addCallback(lambda routes: RoutingTable(routes, rotate=rotate))

    def get(self, route_id: int) -> defer.Deferred:
        """
        @return: Deferred firing with the L{Route} of that id or None;
            failing with ValueError when the stored row is invalid.
        """

        def interaction(txn):
            row = txn.execute(_SELECT + " WHERE id = ?", (int(route_id),)).fetchone()
            return None if row is None else row_to_route(row)

        return self._db.run_interaction("routes_get", interaction)

    # -- writes ------------------------------------------------------------

    def add(self, route: Route) -> defer.Deferred:
        """
        Insert a new row (C{route.id} and C{route.created} are ignored).

        @return: Deferred firing with the stored L{Route} carrying its new
            C{id} and C{created}; failing with L{DuplicateRoute} when the
            same route exists, ValueError when C{route} is not a L{Route}.
        """
        if not isinstance(route, Route):
            return defer.fail(ValueError(f"not a Route: {route!r}"))
        route = route.replace(id=None, created=float(self._now()))

        def interaction(txn):
            sql = "INSERT INTO routes ({}) VALUES ({})".format(
                ", ".join(_DATA_COLUMNS), ", ".join("?" for _ in _DATA_COLUMNS)
            )
            params = route_to_params(route)
            try:
                txn.execute(sql, params)
            except Exception as e:
                if txn.engine.is_duplicate_error(e):
                    raise DuplicateRoute(route) from None
                raise
            return route.replace(id=txn.lastrowid)

        def find_existing(failure):
            failure.trap(DuplicateRoute)

            def lookup(txn):
                row = txn.execute(
                    "SELECT id FROM routes WHERE direction = ? AND prefix = ? AND"
                    " source_prefix = ? AND smsc = ? AND sip_uri = ?",
                    (route.direction, route.prefix, route.source_prefix, route.smsc, route.sip_uri),
                ).fetchone()
                raise DuplicateRoute(route, None if row is None else int(row[0]))

            return self._db.run_interaction("routes_find", lookup)

        return self._db.run_interaction("routes_add", interaction).addErrback(find_existing)

    def remove(self, route_id: int) -> defer.Deferred:
        """
        @return: Deferred firing with True when a row was deleted, False when
            there was none.
        """

        def interaction(txn):
            return txn.execute("DELETE FROM routes WHERE id = ?", (int(route_id),)).rowcount > 0

        return self._db.run_interaction("routes_remove", interaction)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _where_direction(direction: str | None) -> tuple[str, tuple]:
        if direction is None:
            return "", ()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'mt' or 'mo', not {direction!r}")
        return " WHERE direction = ?", (direction,)


class LiveRoutingTable:
    """
    The routing table a running service uses: loaded from the store at start
    and on every C{routes_reload}; look-ups go to the current L{table}.

    A reload that fails (database down) keeps the previous table.
    """

    _log = Logger()

    def __init__(self, store: RouteStore, rotate=None):
        """
        @param store: the L{RouteStore} to read.
        @param rotate: passed to every L{RoutingTable} built.
        """
        self._store = store
        self._rotate = rotate
        #: the table in force (empty until the first L{reload})
        self.table = RoutingTable((), rotate=rotate)

    def reload(self) -> defer.Deferred:
        """
        Read every route again and swap the table in one step.

        @return: Deferred firing with C{{"mt": n, "mo": n, "invalid": n}}
            (JSON-ready for the control socket); failing with the store's
            error, the old table staying in force.
        """

        def swap(result):
            routes, problems = result
            for problem in problems:
                self._log.error("ignoring invalid route row: {problem}", problem=problem)
            self.table = RoutingTable(routes, rotate=self._rotate)
            summary = {
                "mt": sum(1 for r in routes if r.direction == "mt"),
                "mo": sum(1 for r in routes if r.direction == "mo"),
                "invalid": len(problems),
            }
            self._log.info(
                "routing table loaded: {mt} mt, {mo} mo, {invalid} invalid", **summary
            )
            return summary

        return self._store.list_with_problems().addCallback(swap)
