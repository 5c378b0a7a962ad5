-- gwsms schema 4: per-connection text options of the smpp table (message
-- options: changing them never re-binds, see gwsms.smpp.link.MESSAGE_OPTIONS).
--   coding: 'auto' = GSM 03.38 when the text fits, else UCS-2 (and the
--           default_data_coding 3 / 8 preference as before); 'latin1' =
--           Latin-1 (data_coding 3) when the text fits, else UCS-2;
--           'ucs2' = always UCS-2.
--   concat: long MT messages: 'udh8', 'udh16', 'sar', 'payload', or ''
--           for the [gateway] concat setting.
--   max_parts: most parts of one MT message; 0 = [gateway] max_parts.
-- One column per statement (SQLite adds one at a time).
ALTER TABLE smpp ADD COLUMN coding VARCHAR(8) NOT NULL DEFAULT 'auto';
ALTER TABLE smpp ADD COLUMN concat VARCHAR(8) NOT NULL DEFAULT '';
ALTER TABLE smpp ADD COLUMN max_parts INTEGER NOT NULL DEFAULT 0;
