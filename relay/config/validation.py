"""The config's JSON Schema, and its failures as messages that never quote a secret."""

from __future__ import annotations

import functools
import json

import jsonschema

from relay import constants as c
from relay.products import PRODUCTS
from relay.redact import redact_url
from relay.schemas import bundled_schema_dir


@functools.cache
def config_validator() -> jsonschema.Draft202012Validator:
    schema_file = bundled_schema_dir() / c.CONFIG_SCHEMA_FILE
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    # The products are data in relay/products.py, not a second list in the schema file.
    product = schema["properties"]["subhooks"]["items"]["properties"]["product"]
    product["enum"] = list(PRODUCTS)
    return jsonschema.Draft202012Validator(schema)


#: Keys whose values are secrets: a problem with one never quotes the value (SPEC 16).
SECRET_KEYS = frozenset({"keys", "secret", "token", "headers"})
#: Keys whose values are URLs that may carry a password: quoted with it masked.
URL_KEYS = frozenset({"store", "url"})

_RULES = {"type": "must be of type {}", "minLength": "must be at least {} character(s)",
          "minItems": "must have at least {} item(s)", "enum": "must be one of {}",
          "minimum": "must be at least {}", "maximum": "must be at most {}"}


def _secret_message(error: jsonschema.ValidationError) -> str:
    """A problem with a secret's value, which it never quotes (a header's name is no
    secret)."""
    if "propertyNames" in error.schema_path:
        return f"{error.instance!r} is not a valid header name"
    if error.validator == "pattern":
        return "must not contain control characters such as a line break (value hidden)"
    rule = _RULES.get(str(error.validator))
    return f"{rule.format(error.validator_value) if rule else 'is not a valid value'} " \
        "(value hidden)"


def schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    path = set(map(str, error.absolute_path))
    if path & SECRET_KEYS:
        return _secret_message(error)
    if path & URL_KEYS and isinstance(error.instance, str):
        return str(error.message).replace(repr(error.instance),
                                          repr(redact_url(error.instance)))
    if error.validator in ("anyOf", "oneOf"):
        return f"invalid value {error.instance!r}"
    return str(error.message)
