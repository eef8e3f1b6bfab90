"""Retriever fixtures: real processes with real embeddings, on both engines (Qdrant Edge, and qdrant-client's
local mode standing in for a Qdrant server)."""

import uuid
from types import SimpleNamespace

import pytest

from llmops_testkit.processes import start_together
from llmops_testkit.retriever import Retriever

# Small enough that the size limit is reached by a test upload in a few milliseconds.
MAX_UPLOAD_BYTES = 256 * 1024


@pytest.fixture(scope="session")
def make_retriever(make_session_retriever):
    """The test kit's retriever factory (session-scoped here: the shared retrievers below), with a small upload
    limit."""

    def make(*, store: str, **overrides: str) -> Retriever:
        overrides.setdefault("RETRIEVER_MAX_UPLOAD_BYTES", str(MAX_UPLOAD_BYTES))
        return make_session_retriever(store=store, **overrides)

    return make


ENGINES = ("edge", "qdrant")


@pytest.fixture(scope="session")
def shared_retrievers(make_retriever):
    """The session's shared retriever of each engine, made on first use: ``shared_retrievers("edge", "qdrant")``.
    Those not running yet start side by side."""
    running: dict[str, Retriever] = {}

    def get(*stores: str) -> list[Retriever]:
        new = {store: make_retriever(store=store, start=False) for store in stores if store not in running}
        start_together(*new.values())
        running.update(new)
        return [running[store] for store in stores]

    return get


@pytest.fixture(scope="session", params=ENGINES)
def retriever(request, shared_retrievers) -> Retriever:
    """The shared retriever of a test session, once per engine (the first asked starts both: tests run on each)."""
    return dict(zip(ENGINES, shared_retrievers(*ENGINES), strict=True))[request.param]


@pytest.fixture(scope="session")
def edge_retriever(shared_retrievers) -> Retriever:
    """The shared retriever on Qdrant Edge (the edge ``retriever``), for tests about what is built on it."""
    return shared_retrievers("edge")[0]


@pytest.fixture
def collection_name() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


# --- test documents: invented facts (no model can know them) among distractors on the same kinds of topics ---
FACT_ID = "harbour-almanac"
FACT = (
    "The lighthouse keeper of Port Verrinow is a retired cartographer named Odalys Quenterby. "
    "She has kept the light on the northern breakwater since the winter the old lens cracked."
)
FACT_QUESTION = "Who keeps the lighthouse at Port Verrinow?"

DISTRACTORS = {
    "market-guide": "The Saturday market of Port Verrinow sells smoked eel, salt cod and wool from the hill farms.",
    "ferry-timetable": "Ferries leave Port Verrinow for the outer islands twice a day in summer and once in winter.",
    "harbour-fees": "Mooring in the inner harbour costs four crowns a night; the harbour master collects the fees.",
    "storm-history": "The great storm of the last century flooded the fish halls and tore the roofs off the net sheds.",
    "school-notes": "The village school teaches navigation, knot tying and arithmetic to children of fishing families.",
    "bakery": "The bakery on Gull Street opens before dawn so the crews can buy bread before they sail.",
    "museum": "The maritime museum displays a whaling boat, old charts and a collection of ship's bells.",
    "festival": "Every August the town holds a festival with rowing races, music and a bonfire on the beach.",
    "railway": "The narrow-gauge railway that once carried herring inland closed fifty years ago.",
    "church": "The stone church above the harbour has a bell that is rung when boats are overdue.",
    "birds": "Puffins and guillemots nest on the cliffs south of the town from May until August.",
    "lighthouse-tech": "Modern lighthouses use LED lamps and automatic timers instead of clockwork and oil.",
    "other-town": "In the town of Selbrook the lighthouse was automated long ago and has no keeper at all.",
    "library": "The harbour library lends tide tables, novels and a shelf of books about local shipwrecks.",
    "weather": "Fog rolls in from the sea on most mornings in late spring and usually clears by noon.",
}

# Exact identifiers: each appears once, in a long document about something else, among short documents naming
# look-alike identifiers that share no token with it. Dense similarity ranks the look-alikes first (measured:
# rank 4 and 2), only BM25 matches the exact identifier, and RRF fusion brings it to the top.
RARE_TERMS = {
    "crane-log": (
        "QX-7731-ZETA",
        (
            "Last spring the old harbour crane was stripped, repainted blue and fitted with new "
            "cables. The work took three weeks because the weather kept turning. The brass plate riveted to its "
            "base, QX-7731-ZETA, was polished and put back."
        ),
    ),
    "boiler-log": (
        "MV-2290-ORCA",
        (
            "The steam boiler in the fish smokery was relined in autumn. Two masons worked on "
            "the firebox while the smoking was moved to the old shed. Its maker's number, MV-2290-ORCA, is "
            "stamped above the door."
        ),
    ),
}
LOOK_ALIKES = {
    "plate-winch": "Plate XQ-1377-ZEDA is fitted to the slipway winch.",
    "plate-pump": "Plate QZ-7137-ZITA is fitted to the fuel pump.",
    "plate-hoist": "Plate XK-3177-ZETTA marks the net loft hoist.",
    "plate-ice": "Plate VM-9022-ORKA is fitted to the ice machine.",
    "plate-fan": "Plate MW-2209-ARCA marks the smokehouse fan.",
    "plate-generator": "Plate NV-0922-ORKAS is on the generator.",
}


@pytest.fixture(scope="session")
def corpus() -> SimpleNamespace:
    return SimpleNamespace(
        FACT_ID=FACT_ID,
        FACT=FACT,
        FACT_QUESTION=FACT_QUESTION,
        DISTRACTORS=DISTRACTORS,
        RARE_TERMS=RARE_TERMS,
        LOOK_ALIKES=LOOK_ALIKES,
    )
