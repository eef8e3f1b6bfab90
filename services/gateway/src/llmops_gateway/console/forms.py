"""Reading console forms into the API's own schemas, and their errors into sentences a person can act on."""

from pydantic import ValidationError
from starlette.datastructures import FormData


def optional_int(form: FormData, name: str, *, label: str) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{label}: {raw!r} is not a whole number") from None


def optional_float(form: FormData, name: str, *, label: str) -> float:
    raw = (form.get(name) or "").strip()
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{label}: {raw!r} is not a number") from None


def optional_list(values: list) -> list[str] | None:
    """Selected options; none selected means no restriction."""
    chosen = [v for v in values if isinstance(v, str) and v]
    return chosen or None


def comma_list(form: FormData, name: str) -> list[str] | None:
    """A comma-separated field; empty means no restriction."""
    return optional_list([part.strip() for part in (form.get(name) or "").split(",")])


def errors_of(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        out = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            out.append(f"{where}: {message}" if where else message)
        return out
    return [str(exc)]
