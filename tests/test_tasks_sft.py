"""A task mixture goes through TRL's SFTTrainer as prompt-completion data: loss on the answer only."""

from __future__ import annotations

import numpy as np

from rlrec.data.synthetic import synthetic_dataset
from rlrec.sid.index import SIDIndex
from rlrec.tasks import TASKS, TaskContext, build_mixture


def test_sft_trainer_masks_the_prompt(tmp_path):
    from trl import SFTConfig, SFTTrainer

    from rlrec.models.tiny import tiny_model_and_tokenizer

    dataset = synthetic_dataset(40, 60, seed=2)
    items = list(dataset.items)
    codes = np.array([[k % 4, (k // 4) % 4, k // 16] for k in range(len(items))])
    index = SIDIndex(items, codes, [4, 4, 8])
    mixture = build_mixture(TaskContext.build(dataset, index), {name: 1.0 for name in TASKS}, num_examples=27)
    model, tokenizer = tiny_model_and_tokenizer()
    tokenizer.add_tokens(index.vocabulary())
    model.resize_token_embeddings(len(tokenizer))
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4, bf16=False,
                     use_cpu=True, activation_checkpointing=False, report_to="none", save_strategy="no")
    trainer = SFTTrainer(model=model, args=args, train_dataset=mixture, processing_class=tokenizer)
    for row in trainer.train_dataset:
        labelled = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
        assert tokenizer.decode(labelled).strip() == row["completion"][0]["content"] + "<|im_end|>"
    assert trainer.train().training_loss > 0
