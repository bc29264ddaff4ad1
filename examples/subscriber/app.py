"""Example subscriber: keeps a tenant record per shop from shop-token-broker's
lifecycle events on EventBridge (Python 3.11+, boto3 only). See README.md.

Tenant item:  pk = "tenant#<platform>#<shop>", platform, shop, status
              (active | suspended | uninstalled), eshop_url, installed_at,
              last_sequence.
Event marker: pk = "event#<event id>", expires_at (TTL, 7 days).
"""

import os
import time

import boto3

TABLE = os.environ["TENANTS_TABLE"]
MARKER_TTL_SECONDS = 7 * 24 * 3600
STATUS_AFTER = {"suspended": "suspended", "resumed": "active", "uninstalled": "uninstalled"}

dynamodb = boto3.client("dynamodb")


def handler(event, context):
    # Deduplicate on the broker's event id (detail.id). The envelope's own
    # "id" is EventBridge's and differs between redeliveries of one event.
    detail = event["detail"]
    marker = {
        "Put": {
            "TableName": TABLE,
            "Item": {
                "pk": {"S": f"event#{detail['id']}"},
                "kind": {"S": detail["kind"]},
                "expires_at": {"N": str(int(time.time()) + MARKER_TTL_SECONDS)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    change = tenant_change(detail)
    if change is None:
        # A kind this subscriber does not act on: recorded as processed.
        put_marker(marker)
        return
    # The marker and the change commit together, in one transaction: a crash
    # between the two can neither lose the change nor apply it twice.
    try:
        dynamodb.transact_write_items(TransactItems=[marker, change])
    except dynamodb.exceptions.TransactionCanceledException as error:
        reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
        if any(code not in ("None", "ConditionalCheckFailed") for code in reasons):
            raise  # e.g. a TransactionConflict with a concurrent delivery: retried
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return  # already processed: a duplicate delivery
        # The tenant already holds a newer event of this shop: this one is
        # stale (see tenant_change). Record it as processed, change nothing.
        put_marker(marker)


def tenant_change(detail):
    """The update of the tenant item an event makes, or None."""
    kind = detail["kind"]
    values = {
        ":platform": {"S": detail["platform"]},
        ":shop": {"S": detail["shop"]},
        ":sequence": {"N": str(detail["sequence"])},
    }
    assignments = ["platform = :platform", "shop = :shop", "last_sequence = :sequence", "#status = :status"]
    if kind in ("installed", "imported"):
        values[":status"] = {"S": "active"}
        values[":installed_at"] = {"S": detail["occurred_at"]}
        assignments.append("installed_at = :installed_at")
        eshop_url = detail.get("shop_details", {}).get("eshop_url")
        if eshop_url:
            values[":eshop_url"] = {"S": eshop_url}
            assignments.append("eshop_url = :eshop_url")
    elif kind in STATUS_AFTER:
        # Never deleted on uninstalled: a reinstall may come.
        values[":status"] = {"S": STATUS_AFTER[kind]}
    else:
        return None
    return {
        "Update": {
            "TableName": TABLE,
            "Key": {"pk": {"S": f"tenant#{detail['platform']}#{detail['shop']}"}},
            "UpdateExpression": "SET " + ", ".join(assignments),
            # Deliveries can arrive out of order (EventBridge does not keep
            # order, and a retried delivery can come after a newer one). The
            # sequence is strictly increasing per shop, so an event applies
            # only if it is newer than the last one applied: a late
            # "suspended" never undoes a later "resumed". A status event that
            # arrives before the shop's "installed" creates the record (the
            # newest state wins); the late "installed" is then skipped, so
            # eshop_url may be missing in that rare case.
            "ConditionExpression": "attribute_not_exists(pk) OR last_sequence < :sequence",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
    }


def put_marker(marker):
    try:
        dynamodb.put_item(**marker["Put"])
    except dynamodb.exceptions.ConditionalCheckFailedException:
        pass  # already processed
