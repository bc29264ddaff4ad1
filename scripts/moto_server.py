"""moto_server, with DynamoDB's per-item atomicity.

DynamoDB evaluates a write's condition and applies the write as one step.
moto's server is threaded and does both in plain Python, so two concurrent
conditional writes on one item can, rarely, both pass: a second refresh lease
in a storm test that real DynamoDB would have refused. One lock around the
backend's write operations restores the guarantee; reads stay concurrent.
Arguments are moto_server's own.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_writes = threading.Lock()

for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    _write = getattr(DynamoDBBackend, _name)

    @functools.wraps(_write)
    def _atomic(self, *args, _write=_write, **kwargs):
        with _writes:
            return _write(self, *args, **kwargs)

    setattr(DynamoDBBackend, _name, _atomic)

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
