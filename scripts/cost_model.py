#!/usr/bin/env python3
"""USD per month of the shop token broker on AWS, from measured request counts.

    python3 scripts/cost_model.py --counts docs/cost-counts.json             # totals
    python3 scripts/cost_model.py --counts docs/cost-counts.json --markdown  # report (docs/cost.md)

The counts file (`scripts/bench.sh counts --json docs/cost-counts.json` writes it) gives the
AWS requests per operation of each installation store, counted on the wire; PRICES and
ASSUMPTIONS below give the rest (a counts file may carry its own vend_mix). Options: --region eu-central-1, --free-tier, --direct-invoke, --vends-with-cache N,
--vends-without-cache N, --sizes 100,1000. Python 3 standard library only.
"""
import argparse
import json
import math
import sys

READ = "2026-12-03"
MEMORY = f"from memory, not re-checked on {READ}"
AWS, THIRD = f"AWS page, stored copy read {READ}", f"third-party page, stored copy read {READ}"


def p(price, per, unit, source, status):
    """USD `price` per `per` units; "value" is per unit."""
    return {"value": price / per, "price": price, "per": per, "unit": unit, "source": source,
            "status": status, "region": "us-east-1"}


PRICES = {  # us-east-1, on-demand, list prices
    "lambda_request": p(0.20, 1e6, "requests", "https://cloudchipr.com/blog/aws-lambda-pricing", THIRD),
    "lambda_gb_s": p(0.0000133334, 1, "GB-seconds, arm64, first 7.5 billion GB-s a month", "https://cloudchipr.com/blog/aws-lambda-pricing", THIRD),
    "http_api": p(1.00, 1e6, "HTTP API requests, first 300M a month (x0.9 above)", "https://docs.aws.amazon.com/pt_br/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html", AWS),
    "rest_api": p(3.50, 1e6, "REST API requests, first 333M (not used: the stack is an HTTP API)", "https://docs.aws.amazon.com/pt_br/whitepapers/latest/best-practices-api-gateway-private-apis-integration/cost-optimization.html", AWS),
    "function_url": p(0.0, 1, "function URL requests: no extra charge (not used: the stack has none)", "https://raw.githubusercontent.com/api-evangelist/aws-lambda/refs/heads/main/plans/aws-lambda-plans-pricing.yml", THIRD),
    "ddb_rru": p(0.125, 1e6, "read request units, on-demand (after the 1 Nov 2024 50% cut)", "https://airbyte.com/data-engineering-resources/dynamodb-pricing", THIRD),
    "ddb_wru": p(0.625, 1e6, "write request units, on-demand (after the 1 Nov 2024 50% cut)", "https://airbyte.com/data-engineering-resources/dynamodb-pricing", THIRD),
    "ddb_storage": p(0.25, 1, "GB-month, Standard table class (first 25 GB free)", "https://aws.amazon.com/dynamodb/pricing/", AWS),
    "ddb_pitr": p(0.20, 1, "GB-month of continuous backups (PITR)", "https://gist.github.com/allenheltondev/d028926b7fe3b0656c96af9140ab55e3", MEMORY),
    "kms_key": p(1.00, 1, "customer managed key-month", "https://aws.amazon.com/kms/pricing/", AWS),
    "kms_rotation": p(1.00, 1, "key-month per rotated key version, first two rotations only", "https://aws.amazon.com/kms/pricing/ + https://sysops.app/aws-news/474.html (AWS Security Blog copy: cap at two rotations)", AWS + "; the cap's exact form " + MEMORY),
    "kms_request": p(0.03, 1e4, "requests (20 000 a month free)", "https://www.wring.co/blog/aws-kms-pricing-guide", THIRD),
    "sm_secret": p(0.40, 1, "secret-month (prorated hourly)", "https://raw.githubusercontent.com/api-evangelist/amazon-secrets-manager/refs/heads/main/plans/amazon-secrets-manager-plans-pricing.yml (transcribed from aws.amazon.com/secrets-manager/pricing/, 2026-09-20)", THIRD),
    "sm_api": p(0.05, 1e4, "API calls", "same as the line above", THIRD),
    "logs_ingest": p(0.50, 1, "GB ingested (Standard; for Lambda logs the first of the vended-log tiers since 1 May 2025)", "https://www.duckbillgroup.com/?p=9080", THIRD),
    "logs_store": p(0.03, 1, "GB-month stored", "https://hykell.com/kb/platform-specific-guides/aws-cloudwatch-logs-pricing", THIRD),
    "cw_metric": p(0.30, 1, "custom metric-month (first 10 000; EMF metrics count)", "https://signoz.io/guides/cloudwatch-pricing", THIRD),
    "cw_alarm": p(0.10, 1, "standard-resolution alarm metric-month", "https://aws.amazon.com/cloudwatch/pricing/", MEMORY),
    "cw_dashboard": p(3.00, 1, "custom dashboard-month", "https://www.factualminds.com/blog/amazon-cloudwatch-pricing-metrics-logs-alarms-dashboards/", THIRD),
}
# Frankfurt, where a Czech/Slovak/Hungarian operator would deploy: only what differs from us-east-1.
EU_CENTRAL_1 = {"ddb_rru": 0.1525, "ddb_wru": 0.7625, "ddb_storage": 0.306, "ddb_pitr": 0.2448,
                "http_api": 1.20, "logs_ingest": 0.63, "logs_store": 0.0324}  # USD per `per` units
# Always-free allowances (--free-tier); the HTTP API's and Secrets Manager's are for new accounts only.
FREE = {"lambda_request": 1e6, "lambda_gb_s": 4e5, "kms_request": 2e4, "logs_gb": 5.0, "ddb_gb": 25.0,
        "cw_metric": 10, "cw_alarm": 10, "cw_dashboard": 3}

OPS = ("l1_hit", "l2_hit", "mint", "install", "webhook", "listing")
VENDS = ("l1_hit", "l2_hit", "mint")


def a(value, why):
    return {"value": value, "why": why}


ASSUMPTIONS = {
    "region": a("us-east-1", "its prices are the ones AWS and others publish in text; --region eu-central-1 applies Frankfurt's (from memory)"),
    "vends_with_cache": a(1490, "vends per installation-month with the client's cache: one warm consumer per shop renewing every 29 min (Shoptet's 30-min token less the client's 60 s margin; BENCHMARKS.md: 2 vendor calls per 30 min), 30 d x 24 h x 60 / 29"),
    "vends_without_cache": a(20000, "vends per installation-month without it: one per platform API call, 20 000 a month (one every ~2 min) -- the stated vend rate"),
    "vend_mix": a({"with_client_cache": {"l1_hit": 0.02, "l2_hit": 0.03, "mint": 0.95},
                   "without_client_cache": {"l1_hit": 0.865, "l2_hit": 0.05, "mint": 0.085}},
                  "where vends are served. With the client's cache a consumer comes back when its token has 60 s left, inside the broker's 5-min margin, so nearly every vend mints (BENCHMARKS.md, consumer client). Without it mints stay at one per shop per 25 min (the fleet bench: mints = a perfect cache's), 1 728 a month of 20 000 vends, and the rest are hits, mostly L1 (L1 is trusted 30 s, then one GetItem); a counts file's own vend_mix overrides this"),
    "http_api_share": a(1.0, "share of vends through the HTTP API (HttpTransport::api_gateway); LambdaTransport invokes the vendor directly, no API Gateway (--direct-invoke: 0)"),
    "memory_mb": a(128, "template.yaml MemorySize: 128 and Architectures: arm64, both functions (lines 496-498, 711-713)"),
    "billed_ms": a({"l1_hit": 2, "l2_hit": 8, "mint": 350, "install": 900, "webhook": 600, "listing": 40},
                   "billed duration per operation, 1 ms granularity: L1 is 1.7 us in-process (BENCHMARKS.md) plus the Runtime API; L2 one in-region GetItem; mint, install and webhook wait on Shoptet/Shoprenter (CZ/HU) from us-east-1"),
    "cold_start": a({"share": 0.01, "init_ms": 40}, "1% of invocations start an instance; provided.al2023 is a custom runtime, so INIT is billed (and is for every runtime since 1 Aug 2025)"),
    "log_bytes": a({"l1_hit": 0, "l2_hit": 0, "mint": 350, "install": 900, "webhook": 900, "listing": 300},
                   "CloudWatch bytes per operation incl. 26 B per event: L1/L2 log at DEBUG, a mint one INFO line, LogFormat JSON with SystemLogLevel WARN drops the platform START/REPORT lines (template lines 503-505, 720-722)"),
    "emf": a({"bytes": 2050, "warm_instances": 3}, "the vendor flushes its EMF counters at most once a minute per instance (shared/runtime/src/metrics.rs); the fleet hour measured 857-2 052 bytes per instance-minute, more at higher vend rates (BENCHMARKS.md); 3 warm instances"),
    "retention_days": a(30, "LogRetentionDays default 30 (template lines 152-154; RetentionInDays lines 345, 618): a month of logs stored"),
    "lifecycle": a({"install": 0.05, "webhook": 0.10}, "installs (incl. reinstalls) and add-on webhooks per installation-month"),
    "listing_page": a({"items": 50, "walks_per_month": 30}, "GET /installations pages of 50 (DEFAULT_PAGE in operator.rs), the whole registry walked once a day"),
    "item_bytes": a({"tokens": 600, "registry": 350, "installations": 900, "overhead": 100},
                    "item sizes: each write <= 1 KB is 1 WRU, each consistent read <= 4 KB 1 RRU; the registry's by-platform index projects ALL (template lines 247-255): +1 WRU per registry write and a second copy stored"),
    "registry_writes": a({"install": 1, "webhook": 1}, "registry writes per operation when the counts do not name tables"),
    "platform_secrets": a(2, "Secrets Manager secrets in either store: the Shoptet webhook key and one add-on/app client secret"),
    "token_key_requests": a({"per_instance": 4}, "the token cache's KMS requests per new instance (shared/aws/src/storage/dynamodb.rs), in both stores: one GenerateDataKey on its first write, one Decrypt per other instance whose sealed tokens it reads (about the 3 warm instances), never per vend (functions/token-vendor/tests/cold_vend.rs); the counts file's vends are counted warm"),
    "kms_rotations": a(2, "EnableKeyRotation: true (line 307), yearly: from year three the key costs $3/month, the cap ($1 in year one)"),
    "cw_fixed": a({"metrics": 40, "alarms": 6, "dashboards": 1}, "~40 EMF metric series (two dimension sets each, shared/runtime/src/metrics.rs), 6 alarms and 1 dashboard (template lines 804-944)"),
}
V = {k: v["value"] for k, v in ASSUMPTIONS.items()}
LINES = ["Lambda requests", "Lambda duration", "API Gateway (HTTP API)", "DynamoDB reads", "DynamoDB writes",
         "DynamoDB storage + PITR", "KMS key-months", "KMS requests", "Secrets Manager secrets",
         "Secrets Manager API calls", "CloudWatch Logs ingestion", "CloudWatch Logs storage",
         "CloudWatch metrics, alarms, dashboard"]
ADVICE = {
    "Secrets Manager secrets": "switch InstallationStore to DynamoDB",
    "API Gateway (HTTP API)": "turn on the client's cache, or use LambdaTransport (direct invoke, no API Gateway)",
    "Lambda requests": "turn on the client's cache", "Lambda duration": "fewer or faster mints",
    "KMS requests": "fewer Decrypts per mint (keep the opened installation per instance)",
    "DynamoDB writes": "fewer writes per mint (one mint per shop per token lifetime is the floor)",
    "DynamoDB reads": "fewer reads per mint", "KMS key-months": "nothing: fixed",
    "CloudWatch metrics, alarms, dashboard": "nothing to switch: fixed; fewer metric series",
    "CloudWatch Logs ingestion": "a higher LogLevel", "CloudWatch Logs storage": "a shorter LogRetentionDays",
}


def vend_mix(counts):
    """The counts file's vend mix if it has one, else the assumption's."""
    return counts.get("vend_mix") or V["vend_mix"]


def split_kind(kind):
    """'dynamodb:GetItem(tokens)' -> ('dynamodb', 'GetItem', 'tokens')."""
    service, _, op = kind.partition(":")
    table = op[op.index("(") + 1:-1] if op.endswith(")") else None
    return service, op.split("(")[0], table


def units(counts, store, per_op):
    """Billable quantities of one store for the operations `per_op` (operation -> count)."""
    q = dict.fromkeys(("rru", "wru", "kms", "sm"), 0.0)
    size = V["item_bytes"]
    page_rru = math.ceil(V["listing_page"]["items"] * size["registry"] / 4096) * 0.5  # eventually consistent
    named = any("(" in k for op in OPS for k in counts["stores"][store].get(op, {}))
    for op, n in per_op.items():
        for kind, mean in counts["stores"][store].get(op, {}).items():
            service, action, table = split_kind(kind)
            r = n * mean
            if service == "dynamodb" and action in ("GetItem", "BatchGetItem"):
                q["rru"] += r * math.ceil(size.get(table, size["tokens"]) / 4096)
            elif service == "dynamodb" and action in ("Query", "Scan"):
                q["rru"] += r * page_rru
            elif service == "dynamodb" and action in ("PutItem", "UpdateItem", "DeleteItem"):
                w = math.ceil(size.get(table, size["tokens"]) / 1024)
                q["wru"] += r * w * (2 if table == "registry" else 1)  # + the by-platform index
            elif service == "kms":
                q["kms"] += r
            elif service == "secretsmanager":
                q["sm"] += r
            else:
                sys.exit(f"{store}.{op}: no price for {kind!r}")
        if not named:
            q["wru"] += n * V["registry_writes"].get(op, 0)
    return q


def http_api_cost(requests, price):
    return min(requests, 300e6) * price + max(0, requests - 300e6) * price * 0.9


def month(counts, store, cached, n, prices, free):
    """USD per line item for `n` installations."""
    rate = V["vends_with_cache"] if cached else V["vends_without_cache"]
    mix = vend_mix(counts)["with_client_cache" if cached else "without_client_cache"]
    per_op = {op: n * rate * mix.get(op, 0.0) for op in VENDS}
    per_op["install"] = n * V["lifecycle"]["install"]
    per_op["webhook"] = n * V["lifecycle"]["webhook"]
    per_op["listing"] = V["listing_page"]["walks_per_month"] * math.ceil(n / V["listing_page"]["items"])
    vends = sum(per_op[op] for op in VENDS)
    invocations = sum(per_op.values())
    gb = V["memory_mb"] / 1024
    gb_s = sum(per_op[op] * V["billed_ms"][op] for op in OPS) / 1000 * gb
    gb_s += invocations * V["cold_start"]["share"] * V["cold_start"]["init_ms"] / 1000 * gb
    q = units(counts, store, per_op)
    q["kms"] += invocations * V["cold_start"]["share"] * V["token_key_requests"]["per_instance"]
    size = V["item_bytes"]
    item = size["tokens"] + 2 * size["registry"] + 3 * size["overhead"]
    if store == "DynamoDB":
        item += size["installations"] + size["overhead"]
    stored_gb = n * item / 2**30
    emf = min(vends, 43200 * V["emf"]["warm_instances"]) * V["emf"]["bytes"]
    log_gb = (sum(per_op[op] * V["log_bytes"][op] for op in OPS) + emf) / 2**30
    secrets = V["platform_secrets"] + (n if store == "SecretsManager" else 0)
    fixed = V["cw_fixed"]
    less = (lambda qty, key: max(0.0, qty - FREE[key])) if free else (lambda qty, key: qty)
    price = lambda key: prices[key]["value"]
    return dict(zip(LINES, [
        less(invocations, "lambda_request") * price("lambda_request"),
        less(gb_s, "lambda_gb_s") * price("lambda_gb_s"),
        http_api_cost(vends * V["http_api_share"] + invocations - vends, price("http_api")),
        q["rru"] * price("ddb_rru"),
        q["wru"] * price("ddb_wru"),
        less(stored_gb, "ddb_gb") * price("ddb_storage") + stored_gb * price("ddb_pitr"),
        # The token key in both stores, the installation key with DynamoDB.
        (1 + V["kms_rotations"]) * price("kms_key") * (2 if store == "DynamoDB" else 1),
        less(q["kms"], "kms_request") * price("kms_request"),
        secrets * price("sm_secret"),
        q["sm"] * price("sm_api"),
        less(log_gb, "logs_gb") * price("logs_ingest"),
        log_gb * V["retention_days"] / 30 * price("logs_store"),
        less(fixed["metrics"], "cw_metric") * price("cw_metric") + less(fixed["alarms"], "cw_alarm")
        * price("cw_alarm") + less(fixed["dashboards"], "cw_dashboard") * price("cw_dashboard"),
    ]))


COLUMNS = [("SecretsManager", True), ("SecretsManager", False), ("DynamoDB", True), ("DynamoDB", False)]


def title(store, cached):
    return f"{'Secrets Manager' if store == 'SecretsManager' else 'DynamoDB + KMS'}, {'with' if cached else 'no'} client cache"


def usd(x):
    return f"{x:,.0f}" if x >= 1000 else f"{x:,.2f}"


def break_even(counts, cached, prices, free):
    """The fewest installations at which the DynamoDB store costs less."""
    for n in range(1, 100001):
        if sum(month(counts, "DynamoDB", cached, n, prices, free).values()) < \
                sum(month(counts, "SecretsManager", cached, n, prices, free).values()):
            return n
    return None


def report(counts, sizes, prices, free, markdown):
    out = []
    if markdown:
        out += [f"Counts: recorded {counts.get('recorded', '?')}, `{counts.get('command', '?')}`. "
                f"Region {V['region']}; free tier {'subtracted' if free else 'not subtracted'}; "
                f"vends per installation-month {V['vends_with_cache']:,} with / {V['vends_without_cache']:,} "
                f"without the client's cache; {V['http_api_share']:.0%} of vends through the HTTP API.", ""]
        out += ["| Price | USD | per | Region | Source | Checked |", "|---|---:|---|---|---|---|"]
        out += [f"| {k} | {v['price']:.10g} | {'1M ' if v['per'] == 1e6 else '10 000 ' if v['per'] == 1e4 else ''}"
                f"{v['unit']} | {v['region']} | {v['source']} | {v['status']} |" for k, v in prices.items()]
        out += ["", "| Assumption | Value | Why |", "|---|---|---|"]
        out += [f"| {k} | `{json.dumps(V[k])}` | {v['why']} |" for k, v in ASSUMPTIONS.items()]
    totals = {}
    for n in sizes:
        cols = [month(counts, s, c, n, prices, free) for s, c in COLUMNS]
        totals[n] = [sum(c.values()) for c in cols]
        if not markdown:
            continue
        out += ["", f"### {n:,} installations: USD per month", "",
                "| Line item | " + " | ".join(title(s, c) for s, c in COLUMNS) + " |",
                "|---|" + "---:|" * len(COLUMNS)]
        out += [f"| {line} | " + " | ".join(usd(c[line]) for c in cols) + " |" for line in LINES]
        out.append("| **Total** | " + " | ".join(f"**{usd(t)}**" for t in totals[n]) + " |")
        out.append("| per installation | " + " | ".join(f"{t / n:.4f}" for t in totals[n]) + " |")
        dom = [max(c, key=c.get) for c in cols]
        out.append("| Dominant line | " + " | ".join(f"{d} ({c[d] / sum(c.values()):.0%})" for d, c in zip(dom, cols)) + " |")
        out.append("| Lever | " + " | ".join(ADVICE.get(d, "") for d in dom) + " |")
    head = "| Installations | " + " | ".join(title(s, c) for s, c in COLUMNS) + " |"
    out += ["", "### Totals, USD per month", "", head, "|---:|" + "---:|" * len(COLUMNS)]
    out += [f"| {n:,} | " + " | ".join(usd(t) for t in totals[n]) + " |" for n in sizes]
    for cached in (True, False):
        be = break_even(counts, cached, prices, free)
        out.append(f"\nThe DynamoDB + KMS store costs less than Secrets Manager from {be} installations "
                   f"{'with' if cached else 'without'} the client's cache.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", required=True, help="JSON of measured request counts per operation")
    ap.add_argument("--markdown", action="store_true", help="the full report: prices, assumptions, line items")
    ap.add_argument("--region", choices=("us-east-1", "eu-central-1"), default="us-east-1")
    ap.add_argument("--free-tier", action="store_true", help="subtract the always-free allowances")
    ap.add_argument("--direct-invoke", action="store_true", help="vends by lambda:InvokeFunction, not the HTTP API")
    ap.add_argument("--vends-with-cache", type=float)
    ap.add_argument("--vends-without-cache", type=float)
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--update-doc", metavar="FILE", help="write the tables into FILE between its markers")
    ap.add_argument("--check-doc", metavar="FILE", help="exit 1 unless FILE holds the tables this prints")
    args = ap.parse_args()
    with open(args.counts) as f:
        counts = json.load(f)
    for store in ("SecretsManager", "DynamoDB"):
        missing = [op for op in OPS if op not in counts["stores"].get(store, {})]
        if missing:
            sys.exit(f"{args.counts}: {store} lacks {', '.join(missing)}")
    prices = {k: dict(v) for k, v in PRICES.items()}
    if args.region == "eu-central-1":
        for k, price in EU_CENTRAL_1.items():
            prices[k].update(price=price, value=price / prices[k]["per"], region="eu-central-1",
                             source="no stored page checked", status=MEMORY)
        V["region"] = "eu-central-1 (prices that differ: from memory)"
    if args.direct_invoke:
        V["http_api_share"] = 0.0
    if args.vends_with_cache is not None:
        V["vends_with_cache"] = args.vends_with_cache
    if args.vends_without_cache is not None:
        V["vends_without_cache"] = args.vends_without_cache
    for key, rate in (("with_client_cache", V["vends_with_cache"]), ("without_client_cache", V["vends_without_cache"])):
        mints = rate * vend_mix(counts)[key].get("mint", 0.0)
        if mints > 30 * 24 * 60 / 25:  # a Shoptet token lives 30 min, renewed 5 min early
            print(f"warning: {mints:,.0f} mints per installation-month {key} is more than one per 25 min", file=sys.stderr)
    sizes = [int(s) for s in args.sizes.split(",")]
    printed = report(counts, sizes, prices, args.free_tier, args.markdown)
    if args.update_doc or args.check_doc:
        sys.exit(doc_tables(args.update_doc or args.check_doc, printed, write=bool(args.update_doc)))
    print(printed)


DOC_BEGIN, DOC_END = "<!-- cost_model.py tables: begin -->", "<!-- cost_model.py tables: end -->"


def doc_tables(path, printed, write):
    """The per-size tables (the --markdown report from its first one on) between the markers of
    `path` (docs/cost.md): written, or compared. Returns the exit status."""
    tables = printed[printed.index("### 100 installations"):].strip()
    with open(path) as f:
        doc = f.read()
    head, rest = doc.split(DOC_BEGIN, 1)
    documented, tail = rest.split(DOC_END, 1)
    if write:
        with open(path, "w") as f:
            f.write(f"{head}{DOC_BEGIN}\n{tables}\n{DOC_END}{tail}")
        return 0
    if documented.strip() == tables:
        return 0
    import difflib
    sys.stderr.writelines(difflib.unified_diff(documented.strip().splitlines(True), tables.splitlines(True), path, "cost_model.py"))
    print(f"\n{path}: its tables are not what the model prints; rewrite them with\n"
          f"  python3 scripts/cost_model.py --counts COUNTS --markdown --update-doc {path}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
