"""The shapes services exchange, defined once and imported by both sides (no service imports another's package).

One module per contract: ``requestlog`` (gateway -> feedback), ``ratings`` (client -> gateway -> feedback),
``search`` (retriever -> gateway), ``embeddings`` (gateway -> retriever, OpenAI's wire format), ``datasets`` (feedback's export -> trainer), ``adapters`` (trainer's
registrations -> inference's adapter sync), ``models`` (the bundled model every side names the same way).
Shapes, constants and tiny pure helpers only: no business logic, and nothing heavier than pydantic to import.
"""
