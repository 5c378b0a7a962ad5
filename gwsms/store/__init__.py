# -*- test-case-name: tests.test_store_database -*-
"""
Persistence: SQLite (default) or MySQL/MariaDB through Twisted's adbapi.

  - L{gwsms.store.engines}: one class per SQL dialect, database URLs;
  - L{gwsms.store.database}: L{open_database} (pooled, for the service) and
    L{open_database_sync} (blocking, for the command line);
  - L{gwsms.store.migrate}: numbered schema files in C{schema/};
  - L{gwsms.store.smsc}, L{gwsms.store.sip}: the tables' stores.

All SQL of gwsms lives in this package.
"""
