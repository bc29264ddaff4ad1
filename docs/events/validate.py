"""Validate lifecycle events against their JSON Schemas.

    python docs/events/validate.py FILE

FILE holds a JSON array of events (the EventBridge `detail` objects, or the
HTTPS bodies). Each is checked against schemas/<kind>.schema.json (JSON Schema
draft 2020-12, formats checked); an event without a `kind` (a forwarded
Shoptet e-shop webhook) against the schema its fields name (KINDLESS below).
Prints one line per event and exits 1 if any is invalid or of an unknown kind. Needs the `jsonschema` package
(`pip install 'jsonschema[format-nongpl]'`: the extra checks date-time formats).
"""

import json
import pathlib
import sys

import jsonschema

SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"

# Events that carry no `kind`: (a field only that event has, its schema).
KINDLESS = [("event_instance", "shoptet_webhook"), ("occurred_at", "webhook_registration")]


def kind_of(event):
    """The schema name of `event`: its `kind`, else the one its fields name."""
    if not isinstance(event, dict):
        return None
    if "kind" in event:
        return event["kind"]
    for field, kind in KINDLESS:
        if field in event:
            return kind
    return None


def load_validators() -> dict:
    validators = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        kind = path.name.removesuffix(".schema.json")
        validators[kind] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker())
    return validators


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    events = json.loads(pathlib.Path(argv[1]).read_text(encoding="utf-8"))
    if not isinstance(events, list):
        print("INVALID file: expected a JSON array of events")
        return 1
    validators = load_validators()
    failed = False
    for event in events:
        kind = kind_of(event)
        validator = validators.get(kind) if isinstance(kind, str) else None
        if validator is None:
            print(f"INVALID {kind}: unknown kind")
            failed = True
            continue
        errors = sorted(validator.iter_errors(event), key=lambda error: list(error.path))
        if errors:
            failed = True
            message = "; ".join(
                f"{'/'.join(map(str, error.path)) or '(event)'}: {error.message}" for error in errors)
            print(f"INVALID {kind}: {message}")
        else:
            print(f"ok {kind} {event['id']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
