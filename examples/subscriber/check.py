"""Test driver for the example subscriber, against an AWS emulator (moto).

    check.py --endpoint URL --events FILE [--times N]

Creates a uniquely named tenants table at URL, calls app.handler on every
EventBridge envelope in FILE (a JSON array), the whole sequence N times, then
prints the tenant items as one JSON document on stdout (sorted by pk) and the
count of processed-event markers on stderr.
"""

import argparse
import importlib
import json
import os
import pathlib
import sys
import uuid

import boto3


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--times", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("AWS_REGION", "eu-central-1")
    os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_ENDPOINT_URL"] = args.endpoint  # app.py's client uses it too

    dynamodb = boto3.client("dynamodb")
    table = f"tenants-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    os.environ["TENANTS_TABLE"] = table

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    app = importlib.import_module("app")

    envelopes = json.loads(pathlib.Path(args.events).read_text(encoding="utf-8"))
    for _ in range(args.times):
        for envelope in envelopes:
            app.handler(envelope, None)

    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    tenants = []
    markers = 0
    for item in items:
        pk = item["pk"]["S"]
        if pk.startswith("event#"):
            markers += 1
        elif pk.startswith("tenant#"):
            tenant = {
                "pk": pk,
                "platform": item["platform"]["S"],
                "shop": item["shop"]["S"],
                "status": item["status"]["S"],
                "last_sequence": int(item["last_sequence"]["N"]),
            }
            if "eshop_url" in item:
                tenant["eshop_url"] = item["eshop_url"]["S"]
            tenants.append(tenant)
    tenants.sort(key=lambda tenant: tenant["pk"])
    print(json.dumps(tenants, indent=2))
    print(f"processed event markers: {markers}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
