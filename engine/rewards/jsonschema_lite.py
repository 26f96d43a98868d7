"""A small JSON Schema validator for the json_schema check (no dependency for a 1.0/0.0 verdict).

Supported: type, enum, const, properties, required, additionalProperties, patternProperties, items,
prefixItems, minItems, maxItems, uniqueItems, minLength, maxLength, pattern, minimum, maximum,
exclusiveMinimum, exclusiveMaximum, multipleOf, anyOf, allOf, oneOf, not, and local $ref
(#/$defs/NAME, #/definitions/NAME). Annotations (title, description, default, examples, format, $schema,
$id, $comment) are accepted and ignored. Any other keyword is rejected at load, so a schema never
silently checks less than its author thinks.
"""

from __future__ import annotations

import re
from typing import Any

TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "format",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
}
KEYWORDS = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties", "items",
    "prefixItems", "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "anyOf", "allOf", "oneOf", "not", "$ref",
}  # fmt: skip


class SchemaError(ValueError):
    pass


def check_schema(schema: Any, path: str = "#") -> None:
    """Raise SchemaError naming the first unsupported or malformed part of a schema."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{path} must be an object (or true/false), not {schema!r}")
    for key, value in schema.items():
        if key in ANNOTATIONS:
            if key in ("$defs", "definitions"):
                for name, sub in value.items():
                    check_schema(sub, f"{path}/{key}/{name}")
            continue
        if key not in KEYWORDS:
            raise SchemaError(
                f"{path}: keyword '{key}' is not supported (supported: {', '.join(sorted(KEYWORDS))})"
            )
        if key == "type":
            for t in [value] if isinstance(value, str) else value:
                if t not in TYPES:
                    raise SchemaError(f"{path}: unknown type '{t}' (types: {', '.join(TYPES)})")
        elif key in ("properties", "patternProperties"):
            for name, sub in value.items():
                if key == "patternProperties":
                    re.compile(name)
                check_schema(sub, f"{path}/{key}/{name}")
        elif key in ("items", "additionalProperties", "not"):
            check_schema(value, f"{path}/{key}")
        elif key in ("anyOf", "allOf", "oneOf", "prefixItems"):
            for k, sub in enumerate(value):
                check_schema(sub, f"{path}/{key}/{k}")
        elif key == "pattern":
            try:
                re.compile(value)
            except re.error as exc:
                raise SchemaError(f"{path}: bad pattern {value!r}: {exc}") from None
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise SchemaError(f"{path}: only local $ref (#/$defs/NAME) is supported, not {value!r}")


def _is_type(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if t == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate(value: Any, schema: Any, root: Any = None, path: str = "$") -> str | None:
    """None when `value` satisfies `schema`, else a message saying where it does not."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return None
    if schema is False:
        return f"{path}: no value is allowed here"
    if "$ref" in schema:
        error = validate(value, _resolve(root, schema["$ref"]), root, path)
        if error:
            return error
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_is_type(value, t) for t in types):
            return f"{path}: expected {' or '.join(types)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: must be {schema['const']!r}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{path}: missing '{name}'"
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for name, item in value.items():
            matched = False
            if name in props:
                matched = True
                if error := validate(item, props[name], root, f"{path}.{name}"):
                    return error
            for pattern, sub in patterns.items():
                if re.search(pattern, name):
                    matched = True
                    if error := validate(item, sub, root, f"{path}.{name}"):
                        return error
            extra = schema.get("additionalProperties", True) if not matched else True
            if error := validate(item, extra, root, f"{path}.{name}"):
                return error
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        if schema.get("uniqueItems") and len({repr(v) for v in value}) < len(value):
            return f"{path}: items are not unique"
        prefix = schema.get("prefixItems", [])
        for k, item in enumerate(value):
            sub = prefix[k] if k < len(prefix) else schema.get("items", True)
            if error := validate(item, sub, root, f"{path}[{k}]"):
                return error
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']}"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{path}: does not match {schema['pattern']!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: above {schema['maximum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return f"{path}: not above {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"{path}: not below {schema['exclusiveMaximum']}"
        if "multipleOf" in schema and (value / schema["multipleOf"]) % 1:
            return f"{path}: not a multiple of {schema['multipleOf']}"
    for sub in schema.get("allOf", []):
        if error := validate(value, sub, root, path):
            return error
    if "anyOf" in schema and all(validate(value, s, root, path) for s in schema["anyOf"]):
        return f"{path}: matches none of anyOf"
    if "oneOf" in schema and sum(validate(value, s, root, path) is None for s in schema["oneOf"]) != 1:
        return f"{path}: does not match exactly one of oneOf"
    if "not" in schema and validate(value, schema["not"], root, path) is None:
        return f"{path}: matches a schema it must not"
    return None
