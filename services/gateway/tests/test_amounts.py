"""Money amounts as the OpenAPI document states them: each amount type's schema (a decimal pattern or a whole number)
takes exactly what its model takes, and what the model writes back matches the same schema (one schema for input
and output: a stored budget or price reads back as a valid one)."""

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from llmops_gateway.money import BudgetAmount, GpuHourCost, PricePerMTok, TokensPerSecond

TYPES = {"budget": BudgetAmount, "price": PricePerMTok, "gpu_hour": GpuHourCost, "tokens_per_s": TokensPerSecond}


def _schema(amount) -> dict:
    return TypeAdapter(amount).json_schema()


@pytest.mark.parametrize("name", TYPES)
def test_what_the_schema_allows_is_taken_and_reads_back_within_it(name):
    adapter, schema = TypeAdapter(TYPES[name]), _schema(TYPES[name])
    text, whole = schema["anyOf"]

    @given(st.from_regex(text["pattern"], fullmatch=True) | st.integers(whole["minimum"], whole["maximum"]))
    @settings(max_examples=200, derandomize=True, database=None)
    def check(value):
        stored = adapter.dump_python(adapter.validate_python(value), mode="json")
        assert jsonschema.Draft202012Validator(schema).is_valid(stored), stored
        assert adapter.validate_python(stored) == adapter.validate_python(value)

    check()


@pytest.mark.parametrize("value", ["0", "0.0", "1e3", ".5", "+5", " 5", "00.5", "1000000.5", "0.0000001", "５", 0])
def test_a_budget_outside_the_schema_is_refused(value):
    assert not jsonschema.Draft202012Validator(_schema(BudgetAmount)).is_valid(value)
    with pytest.raises(ValidationError):
        TypeAdapter(BudgetAmount).validate_python(value)


def test_a_number_with_a_fraction_is_still_read():
    """Outside the document (text is the exact form), kept for YAML files that write budgets as numbers."""
    assert str(TypeAdapter(BudgetAmount).validate_python(2.5)) == "2.5"


def test_digits_of_other_scripts_are_refused():
    """Python's \\d (and Decimal) take them: "1５" was 15."""
    with pytest.raises(ValidationError):
        TypeAdapter(BudgetAmount).validate_python("1５")
