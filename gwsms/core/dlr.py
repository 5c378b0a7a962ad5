# -*- test-case-name: tests.test_core_dlr -*-
"""
Delivery receipts: SMSC receipts become message states and, when the SIP
sender asked for them, RFC 5438 IMDN delivery notifications.

A receipt (a deliver_sm / data_sm whose esm_class says so) is parsed with
L{gwsms.core.receipts.parse_receipt} (TLVs first, then the C{id:... stat:...}
text) and looked up by its message id among the ids the SMSC returned for
our submits (hex/decimal tolerant, L{gwsms.core.receipts.canonical_ids}),
scoped to the SMSC it came from.  A final receipt settles its part; a
message is C{delivered} when all its parts are, C{undeliverable} when all
are final and one is not delivered.  Then the sender hears of it:

  - the MESSAGE was message/cpim with C{imdn.Disposition-Notification}
    (positive-delivery / negative-delivery): a message/cpim wrapped
    message/imdn+xml delivery notification;
  - otherwise, with C{[gateway] receipts = "text"}: a short text/plain
    MESSAGE; with C{"none"}: nothing.

The notification goes to the sender's registered contact when the
registrar knows the sender, else straight to the sender's URI.  It is sent
once (no retry: a lost notification is logged).  A receipt is never
forwarded as if it were an SMS.  The receipt is acknowledged (ESME_ROK)
after its state change is committed; unknown or unreadable receipts are
acknowledged too and logged at debug level.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer, task
from twisted.logger import Logger

from gwsms.core import cpim, imdn, receipts
from gwsms.smpp.constants import CommandStatus

ROK = int(CommandStatus.ESME_ROK)


def _now_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DlrFlow:
    """
    Receipts in, notifications out.

    @ivar stats: counters (C{matched}, C{unknown}, C{unreadable}, C{notified},
        C{failed} notifications).
    """

    _log = Logger()

    def __init__(self, ctx) -> None:
        """@param ctx: the L{gwsms.core.gateway.GatewayContext}."""
        self.ctx = ctx
        self.stats = dict.fromkeys(("matched", "unknown", "unreadable", "notified", "failed"), 0)
        #: seconds to wait before looking an unknown receipt up once more
        #: (0: acknowledge at once).  With worker processes the part's id
        #: may be committed by another worker a moment after its receipt
        #: arrives here.
        self.unknown_retry = 0.0

    def receipt_received(self, link_name: str, pdu) -> defer.Deferred:
        """
        Apply a receipt; fires with the status for the resp after the commit.
        """
        try:
            receipt = receipts.parse_receipt(pdu.params, pdu.tlvs)
        except receipts.ReceiptError as e:
            self.stats["unreadable"] += 1
            self._log.debug("smsc {link}: unreadable receipt acknowledged: {error}",
                            link=link_name, error=e)
            return defer.succeed(ROK)

        def look_up(_=None):
            return self.ctx.store.receipt(link_name, receipt.message_id, receipt.state,
                                          receipt.final, receipt.error, self.ctx.clock.seconds())

        def applied(result, again=False):
            if result is None and again:
                d = task.deferLater(self.ctx.clock, self.unknown_retry, look_up)
                return d.addCallback(applied)
            if result is None:
                self.stats["unknown"] += 1
                self._log.debug("smsc {link}: receipt for unknown id {id} acknowledged",
                                link=link_name, id=receipt.message_id)
                return ROK
            self.stats["matched"] += 1
            if result["done"]:
                self.notify(result["message"], result["done"])
            return ROK

        return look_up().addCallback(applied, self.unknown_retry > 0)

    def notify_expired(self, row: dict) -> None:
        """An MT message expired unsent: a negative notification if asked."""
        self.notify(row, "expired")

    def notify(self, row: dict, outcome: str) -> None:
        """
        Tell the SIP sender of an MT message how it ended.

        @param row: the message row.
        @param outcome: C{"delivered"}, C{"undeliverable"} or C{"expired"}.
        """
        status = "delivered" if outcome == "delivered" else "failed"
        wanted = set(filter(None, row.get("imdn_want", "").split(",")))
        sender = row["sip_from"]
        now = self.ctx.clock.seconds()
        if row.get("imdn_id") and imdn.should_notify(wanted, status):
            recipient = row.get("imdn_to") or row["sip_to"]
            try:
                xml = imdn.build_delivery_notification(
                    row["imdn_id"], recipient, status, row.get("imdn_datetime") or _now_iso(now))
                body = imdn.wrap_in_cpim(xml, from_uri=recipient, to_uri=sender,
                                         datetime_iso=_now_iso(now))
            except (imdn.ImdnError, cpim.CpimError) as e:
                self._log.warn("message {id}: cannot build the IMDN: {error}",
                               id=row["id"], error=e)
                return
            self._send(row, body, "message/cpim")
        elif not row.get("imdn_id") and self.ctx.config.receipts == "text":
            number = ("+" if row.get("dest_ton") == 1 else "") + row["dest_addr"]
            words = {"delivered": "was delivered", "undeliverable": "could not be delivered",
                     "expired": "expired before it could be sent"}[outcome]
            self._send(row, f"Your message to {number} {words}.".encode(),
                       "text/plain;charset=UTF-8")

    def _send(self, row: dict, body: bytes, content_type: str) -> None:
        d = defer.ensureDeferred(self._deliver(row, body, content_type))

        def failed(failure):
            self.stats["failed"] += 1
            self._log.warn("message {id}: notification to {uri} failed: {error}",
                           id=row["id"], uri=row["sip_from"],
                           error=failure.getErrorMessage() or failure.type.__name__)

        d.addErrback(failed)

    async def _deliver(self, row, body, content_type) -> None:
        ctx = self.ctx
        sender = row["sip_from"]
        uri, peer = sender, None
        if ctx.registrar is not None:
            try:
                bindings = await ctx.registrar.lookup(sender)
            except Exception:
                bindings = []
            if bindings:
                from gwsms.sip.registrar import binding_peer

                uri = bindings[0].contact_uri
                try:
                    peer = binding_peer(bindings[0])
                except ValueError:
                    peer = None
        response = await ctx.uac.send_message(uri, row["sip_to"], sender, body, content_type,
                                              (), peer=peer)
        self.stats["notified"] += 1
        if not 200 <= response.status < 300:
            self._log.info("message {id}: notification answered {status}",
                           id=row["id"], status=response.status)
