"""schemathesis over a running service's OpenAPI document: stateless, each operation in turn (``fuzz_openapi``), and
stateful, sequences of calls along the document's links (``fuzz_openapi_stateful``).

Not schemathesis's pytest plugin (it does not run under pytest 9: ``Function`` has no ``_nodeid``): each
operation's strategy drives a Hypothesis test here, and every operation's first failure is collected, so one
test reports them all. Bounded: ``max_examples`` per operation, explicit examples and generation only (no
shrinking, whose run time has no bound); derandomized, so every run sends the same examples (vary
``max_examples`` to explore further).
"""

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Flaky
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance, use_after_free


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


@dataclass
class StatefulRun:
    """What ``fuzz_openapi_stateful`` did: the sequences (scenarios) and calls made, the answers by operation and
    status, each link's follows (its values put into the next call) and how many of those the API answered with 2xx,
    and the failures (empty: none)."""

    scenarios: int = 0
    calls: int = 0
    answers: Counter = field(default_factory=Counter)  # "POST /admin/keys -> 201": how often
    followed: Counter = field(default_factory=Counter)
    succeeded: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def __add__(self, other: "StatefulRun") -> "StatefulRun":
        return StatefulRun(
            self.scenarios + other.scenarios,
            self.calls + other.calls,
            self.answers + other.answers,
            self.followed + other.followed,
            self.succeeded + other.succeeded,
            self.failures + other.failures,
        )

    def summary(self) -> str:
        """For a failed assertion: what ran, so a link never followed can be told from one that always failed."""
        lines = [f"{self.scenarios} sequences, {self.calls} calls; links followed (of which to 2xx):"]
        lines += [f"  {name}: {count} ({self.succeeded[name]})" for name, count in sorted(self.followed.items())]
        lines += ["answers:", *(f"  {answer}: {count}" for answer, count in sorted(self.answers.items()))]
        return "\n".join(lines)

    def unfollowed(self, *names: str) -> list[str]:
        """The links among ``names`` (``"POST /admin/keys -> read"``) never followed to a 2xx answer."""
        return [name for name in names if not self.succeeded[name]]


def fuzz_openapi_stateful(
    url: str,
    *,
    headers: Callable[[object], dict[str, str]],
    prepare: Callable[[object], None] | None = None,
    lenient: Callable[[object], bool] | None = None,
    paths: str | None = None,
    kept_after_delete: Callable[[object], bool] | None = None,
    links: Collection[str] = (),
    max_examples: int = 10,
    steps: int = 6,
) -> StatefulRun:
    """Sequences of calls along the document's links (a created resource read, changed, deleted), each response
    checked as ``fuzz_openapi`` checks one, plus schemathesis's checks across calls (a created resource can be read;
    a deleted one is gone). Only the document's own links (no inferred ones): what it states is what is tested.
    ``headers``, ``prepare`` and ``lenient`` as for ``fuzz_openapi``; ``paths``: a regular expression, the operations
    whose paths match (one lifecycle or a few: a few short sequences then cover each of its links);
    ``kept_after_delete(operation)``: operations that still answer for a resource its DELETE removed, by design (a
    revoked key stays readable), where a 2xx after the DELETE is no finding; ``links``: the links (``"POST
    /admin/keys -> read"``) the caller expects followed to a 2xx answer, whose link application schemathesis draws
    at random: while one was not, the run goes on past ``max_examples`` (up to three times as many sequences).

    Bounded: ``max_examples`` sequences of at most ``steps`` calls, schema-valid data only, no shrinking; seeded (the
    same draws, as far as the API answers the same). Hypothesis replays a prefix of an earlier sequence now and then,
    and against a live API (whose state the earlier one changed) the replay may draw differently: Hypothesis calls
    that flaky and stops. That ends the pass, not the run: the next pass (the next seed) goes on until enough
    sequences ran, as schemathesis's own runner does. Every failure is recorded when its call is checked, so none is
    lost to that."""
    config = SchemathesisConfig.from_dict(
        {"generation": {"mode": "positive"}, "phases": {"stateful": {"inference": {"algorithms": []}}}}
    )
    schema = schemathesis.openapi.from_url(url, config=config)
    if paths is not None:
        schema = schema.include(path_regex=paths)
    run = StatefulRun()

    class Machine(schema.as_state_machine()):
        link: str | None = None

        def step(self, input):
            transition = input.transition
            self.link = _link_name(transition.id) if transition is not None and input.is_applied else None
            if self.link is not None:
                run.followed[self.link] += 1
            try:
                return super().step(input)
            except (Exception, BaseExceptionGroup) as exc:  # a check's failure, or the service dropping the call
                run.failures.append(f"{input.case.method.upper()} {input.case.path}: {type(exc).__name__}: {exc}")
                raise

        def before_call(self, case) -> None:
            run.calls += 1
            if prepare is not None:
                prepare(case)

        def get_call_kwargs(self, case) -> dict:
            return {"headers": headers(case), "timeout": 30}

        def after_call(self, response, case) -> None:
            super().after_call(response, case)
            run.answers[f"{case.method.upper()} {case.path} -> {response.status_code}"] += 1
            if self.link is not None and response.status_code < 300:
                run.succeeded[self.link] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            excluded = [positive_data_acceptance] if lenient is not None and lenient(case.operation) else []
            if kept_after_delete is not None and kept_after_delete(case.operation):
                excluded.append(use_after_free)
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=excluded,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

        def teardown(self) -> None:
            run.scenarios += 1
            super().teardown()

    # max_examples sequences; more, up to 3 times as many, while a link of ``links`` was never followed to a 2xx.
    limit = 3 * max_examples if links else max_examples
    for pass_seed in range(limit):  # each pass runs one sequence at least
        target = limit if run.scenarios >= max_examples and run.unfollowed(*links) else max_examples
        left = target - run.scenarios
        if left <= 0 or run.failures:
            break
        bounded = settings(
            max_examples=left,
            stateful_step_count=steps,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        try:
            seed(pass_seed)(Machine).run(settings=bounded)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - sorted out below
            # Flaky (or the assertion Hypothesis's data tree makes instead): a replay drew differently, see above.
            if not run.failures and not isinstance(exc, Flaky | AssertionError):
                run.failures.append(f"{type(exc).__name__}: {exc}")
    return run


def assert_lifecycles(
    url: str,
    lifecycles: dict[str, Collection[str]],
    *,
    prepare_for: Callable[[str], Callable[[object], None] | None] | None = None,
    **options,
) -> StatefulRun:
    """``fuzz_openapi_stateful`` once per lifecycle (``{paths: links}``), then asserts no failure and every link
    followed to a 2xx. ``prepare_for(paths)``: a lifecycle's own ``prepare``; ``options``: the rest, for all."""
    runs = {}
    for paths, links in lifecycles.items():
        prepare = options.get("prepare") if prepare_for is None else prepare_for(paths)
        runs[paths] = fuzz_openapi_stateful(url, **(options | {"prepare": prepare}), paths=paths, links=links)
    run = sum(runs.values(), StatefulRun())
    assert not run.failures, "\n\n".join(run.failures)
    unfollowed = [name for paths, links in lifecycles.items() for name in runs[paths].unfollowed(*links)]
    assert not unfollowed, run.summary()
    return run


def _link_name(transition_id: str) -> str:
    """``POST /admin/keys -> [201] read -> GET /admin/keys/{key_id}`` as ``POST /admin/keys -> read``."""
    source, _, rest = transition_id.partition(" -> [")
    return f"{source} -> {rest.split('] ', 1)[1].split(' -> ', 1)[0]}"


def unresolved_references(url: str) -> list[str]:
    """The ``$ref``s of the document at ``url`` that point nowhere in it (a model's own ``#/$defs/...`` copied in
    as it was): schemathesis cannot build those bodies, and leaves their operations out of stateful runs."""
    document = httpx.get(url, timeout=30).json()
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not _resolves(document, ref):
                found.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return found


def _resolves(document: dict, ref: str) -> bool:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
