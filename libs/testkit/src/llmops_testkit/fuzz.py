"""schemathesis over a running service's OpenAPI document, stateless, each operation in turn.

Not schemathesis's pytest plugin (it does not run under pytest 9: ``Function`` has no ``_nodeid``): each
operation's strategy drives a Hypothesis test here, and every operation's first failure is collected, so one
test reports them all. Bounded: ``max_examples`` per operation, explicit examples and generation only (no
shrinking, whose run time has no bound); derandomized, so every run sends the same examples (vary
``max_examples`` to explore further).
"""

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance


def fuzz_openapi(
    url: str,
    *,
    headers: Callable[[object], dict[str, str]],
    prepare: Callable[[object], None] | None = None,
    max_examples: int = 25,
    skip: Callable[[object], bool] | None = None,
    lenient: Callable[[object], bool] | None = None,
) -> tuple[int, list[str]]:
    """Runs every operation of ``url``'s document; returns (operations run, failures as readable text).

    ``headers(case)``: the credentials a case is sent with; ``prepare(case)``: adjusts a generated case in place
    (e.g. points a body at an existing resource); ``skip(operation)``: operations left out, and why is the
    caller's to say. ``lenient(operation)``: operations whose body rules JSON Schema cannot state (one field
    naming another's entry): a schema-valid body they refuse with 4xx is not a finding there."""
    schema = schemathesis.openapi.from_url(url)
    failures, run = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if skip is not None and skip(operation):
            continue
        run += 1
        excluded = [positive_data_acceptance] if lenient is not None and lenient(operation) else []
        check = _operation_test(operation, headers, prepare, excluded, max_examples)
        try:
            check()
        # Any exception is a finding (a check's failure, or the service dropping the connection); one failing
        # operation must not hide the next ones.
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
            failures.append(f"{operation.method.upper()} {operation.path}: {type(exc).__name__}: {exc}")
    return run, failures


def _operation_test(operation, headers, prepare, excluded: list, max_examples: int) -> Callable[[], None]:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=max_examples,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same examples on every run: a finding reproduces, CI does not flicker
    )
    def check(case) -> None:
        if prepare is not None:
            prepare(case)
        case.call_and_validate(headers=headers(case), excluded_checks=excluded, timeout=30)

    return check
