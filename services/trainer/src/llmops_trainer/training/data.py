"""Chat examples as token ids with labels on the final assistant answer only, and the batch collator."""

from dataclasses import dataclass

IGNORE = -100  # the label that cross-entropy skips


@dataclass
class Tokenized:
    features: list[dict]  # {"input_ids": [...], "labels": [...]}
    skipped: int  # examples whose answer did not fit in max_seq_length at all
    truncated: int  # examples cut to max_seq_length (the end of the answer is lost)


def tokenize(tokenizer, examples: list[list[dict]], *, max_seq_length: int) -> Tokenized:
    """The model learns the last (assistant) message; earlier messages are its prompt, rendered with the model's
    own chat template, as the inference server renders a chat request."""
    features, skipped, truncated = [], 0, 0
    for messages in examples:
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):  # a template that rewrites earlier turns: learn the whole answer text
            full = prompt + messages[-1]["content"] + (tokenizer.eos_token or "")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        if len(prompt_ids) >= max_seq_length or len(ids) <= len(prompt_ids):
            skipped += 1
            continue
        truncated += len(ids) > max_seq_length
        ids = ids[:max_seq_length]
        labels = [IGNORE] * len(prompt_ids) + ids[len(prompt_ids) :]
        features.append({"input_ids": ids, "labels": labels})
    return Tokenized(features, skipped, truncated)


class Collator:
    """Pads a batch to its longest example (right side); padding is masked out of attention and loss."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in batch)
        input_ids, labels, attention = [], [], []
        for f in batch:
            pad = longest - len(f["input_ids"])
            input_ids.append(f["input_ids"] + [self.pad_token_id] * pad)
            labels.append(f["labels"] + [IGNORE] * pad)
            attention.append([1] * len(f["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(attention),
        }
