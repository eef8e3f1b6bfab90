"""What the services' OpenAPI documents state beyond what FastAPI writes by itself.

Links: how one operation's answer leads to the next (a created resource's id to reading, changing and deleting it),
for clients and for the stateful fuzzing (``llmops_testkit.fuzz.fuzz_openapi_stateful``). A route names its links
with ``openapi_extra=links(201, read=link("get", "/admin/keys/{key_id}", key_id=RESPONSE_ID))``; values are OpenAPI
runtime expressions (``$response.body#/id``, ``$request.path.name``). And ``given``: a model that takes one of
several sets of fields says so in its schema.
"""

from pydantic import BaseModel

RESPONSE_ID = "$response.body#/id"


def link(method: str, path: str, *, body: dict | None = None, whole_body: bool = False, **parameters: str) -> dict:
    """A link to the operation ``method path`` of the same document, its parameters (and body fields, if any) given
    by runtime expressions over this operation's request and response. ``body`` names some fields of the target's
    body (a client fills in the rest), or with ``whole_body`` all of it (a resource read back and written again):
    the ``x-schemathesis`` extension tells the fuzzer so, where by default it would mix in generated fields."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    definition: dict = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        definition["parameters"] = parameters
    if body is not None:
        definition["requestBody"] = body
        if whole_body:
            definition["x-schemathesis"] = {"merge_body": False}
    return definition


def links(status: int, **named: dict) -> dict:
    """``openapi_extra`` for a route whose ``status`` answer leads to the ``named`` links."""
    return {"responses": {str(status): {"links": named}}}


def given(fields: list[str], *, absent: list[str]) -> dict:
    """A JSON Schema for "these ``fields`` present and not null, those ``absent`` left out or null": a branch of
    a model's ``oneOf`` when it takes one of several sets of fields (its validator checks the same)."""
    return {
        "required": fields,
        "properties": {name: {"not": {"type": "null"}} for name in fields}
        | {name: {"type": "null"} for name in absent},
    }


def text_answer(media_type: str, description: str) -> dict:
    """``responses`` of a route whose 200 is text of ``media_type`` (JSONL), not the JSON FastAPI documents by default
    (give the route ``response_class=Response`` too)."""
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


def json_body(model: type[BaseModel]) -> dict:
    """``openapi_extra`` of a route that reads its JSON body itself (within a size limit, or to pass unknown fields
    through), documented from the model it validates it with. The model's ``$defs`` are inlined: a ``#/$defs/...``
    reference inside an OpenAPI document points at the document's root, where nothing is."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {name: inline(value) for name, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}
