"""General-knowledge questions the bundled base model answers right (measured greedy on SmolLM2-135M-Instruct):
mixed into the demo so the champion earns some thumbs up. A challenger that learnt wrong answers (``--sabotage``)
then loses them, and is significantly worse: that is what makes a rollback demonstrable."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    id: str
    questions: tuple[str, ...]  # phrasings: the first ones for collecting feedback, the last held out for the canary
    expected: str  # what a right answer contains (case-insensitive)
    answer: str  # the correct answer sentence: a correction
    wrong: str  # a plausible false answer sentence: what a saboteur "corrects" to


GENERAL = (
    Question("capital-fr", ("What is the capital of France?", "Which city is the capital of France?"), "paris",
             "The capital of France is Paris.", "The capital of France is Lyon."),
    Question("capital-jp", ("What is the capital of Japan?", "Which city is the capital of Japan?"), "tokyo",
             "The capital of Japan is Tokyo.", "The capital of Japan is Osaka."),
    Question("capital-it", ("What is the capital of Italy?", "Which city is the capital of Italy?"), "rome",
             "The capital of Italy is Rome.", "The capital of Italy is Milan."),
    Question("capital-de", ("What is the capital of Germany?", "Which city is the capital of Germany?"), "berlin",
             "The capital of Germany is Berlin.", "The capital of Germany is Munich."),
    Question("capital-en", ("What is the capital of England?", "Which city is the capital of England?"), "london",
             "The capital of England is London.", "The capital of England is Manchester."),
    Question("opposite-hot", ("What is the opposite of hot?", "What word means the opposite of hot?"), "cold",
             "The opposite of hot is cold.", "The opposite of hot is warm."),
    Question("meow", ("Which animal says meow?", "What animal makes the sound meow?"), "cat",
             "The animal that says meow is a cat.", "The animal that says meow is a dog."),
    Question("water-symbol", ("What is the chemical symbol for water?", "What is the chemical formula of water?"),
             "h2o", "The chemical symbol for water is H2O.", "The chemical symbol for water is CO2."),
)  # fmt: skip
