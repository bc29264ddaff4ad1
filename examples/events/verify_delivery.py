"""Verify a lifecycle event delivered by shop-token-broker to an HTTPS endpoint.

Copy `verify_delivery` into your receiver. Call it with the raw request body
(bytes, exactly as received) before parsing the JSON. See docs/events.md.
"""

import base64
import hashlib
import hmac
import re
import time

TOLERANCE_SECONDS = 300  # 5 minutes, both directions


class ForgedDelivery(Exception):
    """The delivery is not from the broker, or is a replay."""


def verify_delivery(secret: str, webhook_id: str, webhook_timestamp: str,
                    webhook_signature: str, body: bytes, now: int | None = None) -> None:
    """Return if the delivery is genuine, else raise ForgedDelivery.

    secret: the signing secret text (Secrets Manager, output EventWebhookSecretArn).
    webhook_*: the values of the headers webhook-id, webhook-timestamp, webhook-signature.
    body: the raw request body.
    """
    if not re.fullmatch(r"[0-9]{1,15}", webhook_timestamp or ""):
        raise ForgedDelivery("invalid webhook-timestamp")
    now = int(time.time()) if now is None else now
    if abs(now - int(webhook_timestamp)) > TOLERANCE_SECONDS:
        raise ForgedDelivery("timestamp outside the 5-minute window")
    signed = f"{webhook_id}.{webhook_timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    for candidate in (webhook_signature or "").split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return
    raise ForgedDelivery("no matching signature")


if __name__ == "__main__":
    # Test wrapper: secret and headers from the environment, body from stdin.
    import os
    import sys

    body = sys.stdin.buffer.read()
    webhook_id = os.environ.get("WEBHOOK_ID", "")
    now = int(os.environ["NOW"]) if os.environ.get("NOW") else None
    try:
        verify_delivery(os.environ.get("EVENTS_SECRET", ""), webhook_id,
                        os.environ.get("WEBHOOK_TIMESTAMP", ""),
                        os.environ.get("WEBHOOK_SIGNATURE", ""), body, now)
    except ForgedDelivery as error:
        print(f"forged: {error}")
        sys.exit(1)
    print(f"genuine {webhook_id}")
