#!/usr/bin/env python3
"""validate_json.py SCHEMA.json OUTPUTS.json: every string in OUTPUTS (a JSON list) parses as JSON
and validates against SCHEMA with the jsonschema package; prints one line per failure, exits 1
if any."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
outputs = json.load(open(sys.argv[2]))
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for i, text in enumerate(outputs):
    try:
        errors = list(validator.iter_errors(json.loads(text)))
    except json.JSONDecodeError as e:
        errors = [f"not JSON: {e}"]
    for e in errors:
        bad += 1
        print(f"output {i} {text!r}: {getattr(e, 'message', e)}")
print(f"{len(outputs) - bad} of {len(outputs)} valid")
sys.exit(1 if bad else 0)
