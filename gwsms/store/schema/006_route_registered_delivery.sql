-- gwsms schema 6: delivery receipts requested per MT route.
-- routes.registered_delivery: the SMPP registered_delivery of submit_sm for
-- messages taking this route; -1 = the [gateway] registered_delivery
-- setting.  A SIP sender asking for a delivery notification (CPIM/IMDN)
-- still gets at least 1.
ALTER TABLE routes ADD COLUMN registered_delivery INTEGER NOT NULL DEFAULT -1;
