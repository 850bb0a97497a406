"""Padding-free batches (TRL's collator, `padding_free: true`) give the same logits as padded ones on this stack.

TRL's padding-free collator concatenates a batch into one row with restarting position ids and no attention
mask. Flash-attention kernels read the boundaries from `cu_seq_lens_*`; for SDPA and eager attention,
transformers must infer a block-diagonal mask from the position ids, or every example would attend to the
ones before it. It does so only without a KV cache (`use_cache=False`, which `SFTTrainer.compute_loss`
always passes): with a cache the rows silently attend to each other. This checks both, so `padding_free` is
safe beyond flash attention as long as the trainer keeps passing `use_cache=False`.
"""

from __future__ import annotations

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from rlrec.models.tiny import tiny_model_and_tokenizer


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_logits_equal_padded_logits(attn):
    model, tokenizer = tiny_model_and_tokenizer()
    model.set_attn_implementation(attn)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    lengths = [7, 12, 3, 9]
    examples = [{"input_ids": torch.randint(5, 100, (n,), generator=generator).tolist()} for n in lengths]
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)(examples)
    assert flat["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in flat
    with torch.no_grad():
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        inputs = {k: v for k, v in flat.items() if k != "labels"}
        flat_logits = model(**inputs, use_cache=False).logits  # as SFTTrainer.compute_loss calls it
        cached_logits = model(**inputs).logits
    start = 0
    for row, n in enumerate(lengths):
        torch.testing.assert_close(flat_logits[0, start:start + n], padded_logits[row, :n], atol=1e-4, rtol=1e-4)
        start += n
    # With a cache the packed rows leak into each other: the check above can fail.
    second = slice(lengths[0], lengths[0] + lengths[1])
    assert not torch.allclose(cached_logits[0, second], padded_logits[1, :lengths[1]], atol=1e-3)


def test_sft_trainer_still_disables_the_cache_in_compute_loss():
    """The guarantee above rests on this line of TRL: fail loudly if an upgrade drops it."""
    import inspect

    from trl import SFTTrainer

    assert 'inputs["use_cache"] = False' in inspect.getsource(SFTTrainer.compute_loss)
