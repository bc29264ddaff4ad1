"""moto_server, with DynamoDB's per-item atomicity.

DynamoDB evaluates a write's condition and applies the write as one step.
moto's server is threaded and does both in plain Python, so two concurrent
conditional writes on one item can, rarely, both pass: a second refresh lease
in a storm test that real DynamoDB would have refused. One lock around the
backend's write operations restores the guarantee; reads stay concurrent.
The same lock also covers moto's request handlers for those writes: they read
the item for `ReturnValues` (e.g. ALL_OLD) before calling the backend, so two
concurrent UpdateItems could both return the same old item, where DynamoDB
returns each write's own predecessor (the registry's "exactly one of 20
concurrent uninstalls sees the shop installed" relies on it).
Arguments are moto_server's own.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

# Re-entrant: a handler holding it calls the backend, which takes it again.
_writes = threading.RLock()

_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")

for _owner in (DynamoDBBackend, DynamoHandler):
    for _name in _WRITES:
        _write = getattr(_owner, _name)

        @functools.wraps(_write)
        def _atomic(self, *args, _write=_write, **kwargs):
            with _writes:
                return _write(self, *args, **kwargs)

        setattr(_owner, _name, _atomic)

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
