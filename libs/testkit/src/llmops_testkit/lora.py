"""A tiny PEFT LoRA adapter trained on CPU in seconds: enough to teach a small model one fixed answer."""

from pathlib import Path


def train_tiny_adapter(
    base_model_dir: Path,
    out_dir: Path,
    *,
    question: str,
    answer: str,
    steps: int = 8,  # the answer's loss is under 0.01 by then (it starts near 3)
    rank: int = 8,
    learning_rate: float = 5e-3,
    seed: int = 0,
) -> Path:
    """Fits a rank-``rank`` q/v adapter so that ``question`` (as a chat turn) is answered with ``answer``."""
    import torch

    torch.manual_seed(seed)
    # One thread: beside vLLM and other test processes on 2 cores, OpenMP threads fighting for cores made
    # training ~5x slower (measured by the trainer benchmark); a tiny adapter needs no parallelism.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(
            base_model_dir,
            out_dir,
            question=question,
            answer=answer,
            steps=steps,
            rank=rank,
            learning_rate=learning_rate,
        )
    finally:
        torch.set_num_threads(threads)


def _fit(
    base_model_dir: Path, out_dir: Path, *, question: str, answer: str, steps: int, rank: int, learning_rate: float
) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt + answer + tokenizer.eos_token, return_tensors="pt").input_ids
    labels = ids.clone()
    labels[:, : len(tokenizer(prompt).input_ids)] = -100  # learn the answer, not the question
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out_dir)
    return Path(out_dir)
