"""A prompt as the proxy applies it, whatever its origin: a built-in or inline template, or a registered one."""

from dataclasses import dataclass

from llmops_common.contracts import prompts as contract
from llmops_gateway.rag.templates import NO_CONTEXT_SYSTEM, PromptTemplate


@dataclass(frozen=True, slots=True)
class Prompt:
    """``system`` and ``user`` use the gateway's single-brace ``{sources}``/``{question}``; ``user`` None leaves the
    user's turn as it is. ``name`` and ``version`` go into the request log (version None: not a registered one)."""

    name: str
    version: str | None
    system: str
    user: str | None = None
    no_context_system: str = NO_CONTEXT_SYSTEM

    @property
    def rag(self) -> bool:
        return "{sources}" in self.system + (self.user or "")

    @classmethod
    def of_template(cls, template: PromptTemplate) -> "Prompt":
        user = None if template.user == "{question}" else template.user
        return cls(template.version, None, template.system, user, template.no_context_system)

    @classmethod
    def registered(cls, name: str, version: str, template: str | list, *, rag: bool | None = None) -> "Prompt":
        """Raises ``ValueError`` (the contract's message) for a template the gateway cannot fill."""
        parts = contract.parts(template, rag=rag)
        return cls(name, version, parts.system, parts.user)
