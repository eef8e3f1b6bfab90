"""One LoRA fine-tuning run: transformers' Trainer on a PEFT model, reporting through hooks, stoppable every step."""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmops_trainer.jobs.schemas import LoraSpec, TrainingSpec
from llmops_trainer.training import device
from llmops_trainer.training.data import Collator, tokenize

logger = logging.getLogger(__name__)


class Hooks(Protocol):
    def should_stop(self) -> bool: ...  # cancel requested, or the job was lost to another worker

    def progress(self, **fields) -> None: ...  # step, total_steps, epoch, loss, eval_loss, eta_s

    def metrics(self, values: dict[str, float], step: int) -> None: ...


class DatasetUnusable(RuntimeError):
    """Nothing to train on after tokenisation (final: a retry would find the same)."""


@dataclass
class Outcome:
    stopped: bool  # ended early on ``should_stop``: nothing to publish
    steps: int
    train_loss: float | None
    eval_loss: float | None
    runtime_s: float
    tokens: int  # non-padding input tokens trained on
    counts: dict  # train, eval, skipped, truncated
    adapter_dir: Path | None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.runtime_s if self.runtime_s > 0 else 0.0


def _callback_class():
    from transformers import TrainerCallback

    class JobCallback(TrainerCallback):
        """Progress and metrics out through the hooks; a stop request checked after every (sub)step."""

        def __init__(self, hooks: Hooks) -> None:
            self.hooks = hooks
            self.stopped = False
            self.started = time.monotonic()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.hooks.progress(step=0, total_steps=state.max_steps)

        def _check(self, control) -> None:
            if self.hooks.should_stop():
                self.stopped = True
                control.should_training_stop = True

        def on_substep_end(self, args, state, control, **kwargs):
            self._check(control)

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = time.monotonic() - self.started
            remaining = max(0, state.max_steps - state.global_step)
            eta = elapsed / state.global_step * remaining if state.global_step else None
            self.hooks.progress(step=state.global_step, total_steps=state.max_steps, epoch=state.epoch, eta_s=eta)
            self._check(control)

        def on_log(self, args, state, control, logs=None, **kwargs):
            values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            self.hooks.metrics(values, state.global_step)
            # About 20 lines per job in the worker's log; every step is in MLflow.
            if ("loss" in values and state.global_step % max(1, state.max_steps // 20) == 0) or "eval_loss" in values:
                logger.info(
                    "training",
                    extra={
                        "step": state.global_step,
                        "total_steps": state.max_steps,
                        **{k: round(v, 4) for k, v in values.items() if "loss" in k},
                    },
                )
            self.hooks.progress(**{k: values[k] for k in ("loss", "eval_loss") if k in values})

    return JobCallback


def run(
    *,
    source: str,
    train_examples: list,
    eval_examples: list,
    lora: LoraSpec,
    training: TrainingSpec,
    device_plan: device.DevicePlan,
    out_dir: Path,
    hooks: Hooks,
) -> Outcome:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, PrinterCallback, Trainer, TrainingArguments, set_seed

    set_seed(training.seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    max_len = training.max_seq_length
    train = tokenize(tokenizer, train_examples, max_seq_length=max_len)
    evaluation = tokenize(tokenizer, eval_examples, max_seq_length=max_len)
    counts = {
        "train": len(train.features),
        "eval": len(evaluation.features),
        "skipped": train.skipped + evaluation.skipped,
        "truncated": train.truncated + evaluation.truncated,
    }
    if not train.features:
        raise DatasetUnusable(f"no training example leaves room for its answer within max_seq_length={max_len}")
    if hooks.should_stop():
        return Outcome(True, 0, None, None, 0.0, 0, counts, None)

    model = device.load_base_model(source, device_plan)
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.effective_alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    eval_steps = training.eval_steps
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        learning_rate=training.learning_rate,
        num_train_epochs=training.epochs or 1.0,
        max_steps=training.max_steps or -1,
        warmup_steps=training.warmup_steps,
        logging_strategy="steps",
        logging_steps=1,  # a loss per step, in MLflow and in the job's progress
        eval_strategy="steps" if eval_steps and evaluation.features else "no",
        eval_steps=eval_steps,
        save_strategy="no",  # the adapter is saved once, at the end
        report_to="none",  # metrics go to MLflow through the hooks, into the job's own run
        disable_tqdm=True,
        seed=training.seed,
        data_seed=training.seed,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        **device_plan.trainer_args(),
    )
    callback = _callback_class()(hooks)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train.features,
        eval_dataset=evaluation.features or None,
        data_collator=Collator(pad_id),
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; the job's callback logs instead
    if hooks.should_stop():
        return Outcome(True, 0, None, None, 0.0, 0, counts, None)
    started = time.monotonic()
    result = trainer.train()
    runtime = time.monotonic() - started
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    if callback.stopped:
        return Outcome(True, trainer.state.global_step, None, None, runtime, tokens, counts, None)
    eval_loss = None
    if evaluation.features:
        eval_loss = float(trainer.evaluate()["eval_loss"])  # logged through on_log too
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(adapter_dir)  # the adapter only: its config and weights, a few MB
    (adapter_dir / "README.md").unlink(missing_ok=True)  # PEFT's model-card template says nothing about this job
    return Outcome(
        False, trainer.state.global_step, float(result.training_loss), eval_loss, runtime, tokens, counts, adapter_dir
    )
