"""The workflow's config checked against its JSON schema, strictly, with one error naming the key.

Stricter than JSON Schema's own reading in two ways: a whole number written as a float
(`batch_size: 32.0`) is not an integer (the steps would fail on it later with a TypeError),
and booleans are not numbers. The schema forbids unknown keys, so a typo (`flsh:`) is an
error rather than silently ignored.
"""

import yaml

from . import WorkflowInputError


def strict_validator(schema):
    """A JSON Schema validator for which 32.0 is no integer and True no number."""
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
            "number": lambda _, value: isinstance(value, (int, float)) and not isinstance(value, bool),
        }
    )
    return validators.extend(Draft202012Validator, type_checker=checker)(schema)


def _key(path):
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in path).replace(
        ".[", "["
    )


def check_config(config, schema_path):
    """Raise WorkflowInputError for the first violation of the schema at `schema_path`, naming its key."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    errors = sorted(
        strict_validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
    )
    if not errors:
        return
    error = errors[0]
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = _key(error.absolute_path) or "the top level"
        raise WorkflowInputError(f"config: unknown key(s) {unknown} at {where}; expected some of {allowed}")
    message = error.message
    if error.validator == "pattern" and "description" in error.schema:
        message = f"{error.instance!r}: expected {error.schema['description']}"
    if error.validator == "type" and error.validator_value == "integer" and isinstance(error.instance, float):
        message = (
            f"{error.instance!r} is not a whole number written as one (e.g. {int(error.instance)})"
            if float(error.instance).is_integer()
            else f"{error.instance!r} is not an integer"
        )
    raise WorkflowInputError(f"config {_key(error.absolute_path) or '(top level)'}: {message}")
