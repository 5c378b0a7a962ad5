# -*- test-case-name: tests.test_cli_route -*-
"""
C{gwsms route ...}: message routing rules (the C{routes} table).

  gwsms route add --prefix P --smsc NAME [--priority N] [--source-prefix S]
                  [--registered-delivery N]
  gwsms route add --direction mo --prefix P --sip-uri URI [--smsc NAME]
                  [--source-prefix S] [--priority N]
  gwsms route list [--direction mt|mo]
  gwsms route rm ID
  gwsms route test NUMBER [--source S] [--direction mt|mo] [--smsc NAME]
  gwsms route reload

C{--prefix ""} is the default route; a leading C{+} is dropped.  MT routes
(SIP -> SMPP) name the SMSC connection to use; MO routes (SMPP -> SIP) name
the SIP URI to deliver to, optionally only for messages that arrived on one
SMSC.  Lower priority is preferred; routes of one prefix with the same
priority share the load (see L{gwsms.core.routing}).  An MT route may set
the SMPP C{registered_delivery} (delivery receipts) of its messages;
without it the C{[gateway] registered_delivery} setting applies.

Commands that change rows then ask a running service to reload the table
(C{routes_reload} on the control socket) and say whether it did.
"""

from __future__ import annotations

import argparse

from gwsms import control
from gwsms.cli.common import (
    CliError,
    command,
    control_call,
    err,
    format_table,
    load_config,
    open_db,
    usage_error,
    wait,
)
from gwsms.core.routing import DIRECTIONS, MO, MT, Route, RoutingTable
from gwsms.store.routes import DuplicateRoute, RouteStore, describe
from gwsms.store.smsc import SmscStore

#: seconds to wait for the service to reload its routing table
RELOAD_TIMEOUT = 10.0
#: the control command that makes a running service re-read the routes
RELOAD_COMMAND = "routes_reload"


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


def _registered_delivery(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 0x1F:
        raise argparse.ArgumentTypeError(
            f"registered delivery {value} out of range 0-31 (1 = receipt on final outcome,"
            " 2 = on failure only)")
    return value


def _route_id(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid route id {text!r}")
    return value


def register(subparsers) -> None:
    """Add C{gwsms route ...} to the top-level parser."""
    parser = subparsers.add_parser("route", help="message routes (the routes table)")
    sub = parser.add_subparsers(dest="route_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("add", help="add a route")
    p.add_argument("--direction", choices=DIRECTIONS, default=MT,
                   help="mt: SIP -> SMPP (default); mo: SMPP -> SIP")
    p.add_argument("--prefix", metavar="P",
                   help="destination prefix (digits, or letters for alphanumeric "
                        "addresses); '' = default route")
    p.add_argument("--source-prefix", metavar="S", default="",
                   help="only for sources starting with S (default: any)")
    p.add_argument("--smsc", metavar="NAME", default="",
                   help="mt: the SMSC connection to use; mo: only messages from it")
    p.add_argument("--sip-uri", metavar="URI", default="",
                   help="mo: where to deliver (sip: or sips: URI)")
    p.add_argument("--priority", type=_int, metavar="N", default=0,
                   help="lower is preferred; equal shares the load (default 0)")
    p.add_argument("--registered-delivery", type=_registered_delivery, metavar="N",
                   default=None,
                   help="mt: SMPP registered_delivery for messages on this route (0 = no "
                        "receipt, 1 = receipt, 2 = receipt on failure; default: the "
                        "[gateway] registered_delivery setting)")
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list routes")
    p.add_argument("--direction", choices=DIRECTIONS, default=None)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rm", help="delete a route by id (see route list)")
    p.add_argument("id", type=_route_id, metavar="ID")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("test", help="show where a message to NUMBER would go")
    p.add_argument("number", metavar="NUMBER", help="destination (normalised, e.g. 4915112345678)")
    p.add_argument("--source", metavar="S", default="", help="source address")
    p.add_argument("--direction", choices=DIRECTIONS, default=MT)
    p.add_argument("--smsc", metavar="NAME", default="",
                   help="mo: the connection the message arrived on")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("reload", help="make the running service re-read the routes")
    p.set_defaults(func=cmd_reload)


# -- helpers ---------------------------------------------------------------


def _with_db(config, fn):
    db = open_db(config)
    try:
        return fn(db)
    finally:
        db.close()


def _summary(result) -> str:
    if isinstance(result, dict):
        parts = [f"{k}: {v}" for k, v in result.items()]
        return "; ".join(parts) or "done"
    if isinstance(result, int) and not isinstance(result, bool):
        return f"{result} routes"
    return "done"


def _notify(config) -> int:
    """Ask a running service to reload its routes; say what happened."""
    try:
        result = control_call(config, RELOAD_COMMAND, timeout=RELOAD_TIMEOUT)
    except control.ControlUnavailable:
        print("service not running: the change applies when it starts")
        return 0
    except control.ControlError as e:
        if "unknown command" in str(e):
            print(f"the running service does not support {RELOAD_COMMAND} (older gwsms?): "
                  "the change applies when it is restarted")
            return 0
        err(f"error: saved, but the running service did not reload its routes: {e}")
        return 1
    print(f"service reloaded routes ({_summary(result)})")
    return 0


def _show(value: str, empty: str) -> str:
    return value if value else empty


# -- commands --------------------------------------------------------------


@command
def cmd_add(args) -> int:
    if args.prefix is None:
        raise usage_error("route add: missing required option --prefix "
                          "(use --prefix '' for the default route)")
    try:
        route = Route(direction=args.direction, prefix=args.prefix,
                      source_prefix=args.source_prefix, smsc=args.smsc,
                      sip_uri=args.sip_uri, priority=args.priority,
                      registered_delivery=args.registered_delivery)
    except ValueError as e:
        raise usage_error(str(e)) from None
    config = load_config(args)

    def add(db):
        try:
            added = wait(RouteStore(db).add(route))
        except DuplicateRoute as e:
            raise usage_error(str(e)) from None
        known = wait(SmscStore(db).get(route.smsc)) if route.smsc else True
        return added, known

    try:
        added, known = _with_db(config, add)
    except ValueError as e:  # an invalid smpp row with that name
        raise CliError(str(e)) from None
    rd = ("" if added.registered_delivery is None
          else f", registered_delivery {added.registered_delivery}")
    print(f"added {describe(added)} (id {added.id}, priority {added.priority}{rd})")
    if known is None:
        err(f"warning: no smsc named {route.smsc!r} yet: the route is used once "
            "that connection is added (gwsms smsc add)")
    return _notify(config)


@command
def cmd_list(args) -> int:
    config = load_config(args)
    routes, problems = _with_db(
        config, lambda db: wait(RouteStore(db).list_with_problems(args.direction)))
    for problem in problems:
        err(f"warning: {problem}")
    if not routes:
        which = f"{args.direction} " if args.direction else ""
        print(f"no {which}routes (add one with: gwsms route add --prefix P --smsc NAME)")
        return 0
    rows = [
        (
            route.id,
            route.direction,
            f"{route.prefix}*",
            f"{route.source_prefix}*",
            _show(route.smsc, "*" if route.direction == MO else "-"),
            _show(route.sip_uri, "-"),
            route.priority,
            "-" if route.registered_delivery is None else route.registered_delivery,
        )
        for route in routes
    ]
    print(format_table(("ID", "DIR", "PREFIX", "SOURCE", "SMSC", "SIP_URI", "PRIORITY",
                        "REG_DELIVERY"), rows))
    return 0


@command
def cmd_rm(args) -> int:
    config = load_config(args)

    def remove(db):
        store = RouteStore(db)
        try:
            route = wait(store.get(args.id))
        except ValueError:
            route = None  # an invalid row can still be removed
        if not wait(store.remove(args.id)):
            raise usage_error(f"no route with id {args.id}")
        return route

    route = _with_db(config, remove)
    what = describe(route) if route is not None else "route"
    print(f"removed {what} (id {args.id})")
    return _notify(config)


@command
def cmd_test(args) -> int:
    config = load_config(args)
    routes = _with_db(config, lambda db: wait(RouteStore(db).list(args.direction)))
    table = RoutingTable(routes)
    if args.direction == MT:
        names = table.mt_candidates(args.number, args.source)
        if not names:
            print(f"no route for {args.number} (the gateway answers 404)")
            return 1
        print(f"{args.number}: try {', '.join(names)} (in this order; equal priorities rotate)")
        route = table.mt_route(args.number, args.source, names[0])
        if route is not None and route.registered_delivery is not None:
            print(f"registered_delivery {route.registered_delivery} (route id {route.id})")
        else:
            print("registered_delivery: the [gateway] setting")
        return 0
    uri = table.mo_target(args.number, args.source, args.smsc)
    if uri is None:
        print(f"no mo route for {args.number} (the gateway uses a registered contact "
              "or [sip] outbound_uri)")
        return 1
    print(f"{args.number}: {uri}")
    return 0


@command
def cmd_reload(args) -> int:
    config = load_config(args)
    try:
        result = control_call(config, RELOAD_COMMAND, timeout=RELOAD_TIMEOUT)
    except control.ControlUnavailable as e:
        raise CliError(f"{e}; the routes apply when it starts") from None
    except control.ControlError as e:
        if "unknown command" in str(e):
            raise CliError(f"the running service does not support {RELOAD_COMMAND} "
                           "(older gwsms?): restart it to apply the routes") from None
        raise CliError(f"reload failed: {e}") from None
    print(f"service reloaded routes ({_summary(result)})")
    return 0
