"""GRPO rollouts over the SID trie, for TRL's `GRPOTrainer(rollout_func=...)`.

MiniOneRec's group for a prompt is not `num_generations` independent samples but the top
`num_generations` items of one constrained beam search: every candidate is a real item, no two are
the same, and the ranking reward can read each one's beam rank. `mode="sample"` draws them instead
(temperature, top-k within the trie), the on-policy alternative.

TRL hands the rollout the prompts of this process already repeated, each `num_generations` times in
a row (it says otherwise in its docstring; checked on TRL 1.16), and wants one completion per entry.
So the prompts are cut into groups of `num_generations` identical prompts, each group is decoded
once, and its candidates are dealt out to the copies in rank order. The completion is the SID tokens
alone; their log-probs are the full-vocabulary log-softmax of the policy that generated them (in
eval mode, at the trainer's temperature), which is what the trainer recomputes for the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from rlrec.generation.beam_search import constrained_beam_search
from rlrec.generation.constraint import SIDConstraint
from rlrec.generation.sampling import constrained_sample
from rlrec.sid.index import SIDIndex
from rlrec.tasks.reward_batch import BEAM_RANK, ITEM_ID, BatchTargets
from rlrec.utils.defaults import DEFAULT_ROLLOUT_BATCH_SIZE
from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)

RolloutMode = Literal["beam", "sample"]
CREDITS = ("sequence", "divergence", "target")


def render_prompts(tokenizer: Any, prompts: Sequence[Any]) -> list[list[int]]:
    """Token ids of each prompt as the SFT trainer rendered it (`rlrec.tasks.prompts.render_prompt`)."""
    from rlrec.tasks.prompts import render_prompt

    return [tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"] for prompt in prompts]


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            input_ids[row, width - len(seq):] = torch.as_tensor(seq, dtype=torch.long)
            attention_mask[row, width - len(seq):] = 1
    return input_ids.to(device), attention_mask.to(device)


def group_prompts(prompts: Sequence[Any], group_size: int) -> list[Any]:
    """The distinct prompt of each run of `group_size` identical ones; a clear error if they are not grouped."""
    if len(prompts) % group_size:
        raise ConfigError(
            f"rollout: got {len(prompts)} prompts on this process, not a multiple of num_generations={group_size}; "
            "make per_device_train_batch_size x steps_per_generation a multiple of num_generations, so that "
            "each prompt's group stays on one process"
        )
    groups = []
    for start in range(0, len(prompts), group_size):
        block = prompts[start: start + group_size]
        if any(p != block[0] for p in block[1:]):
            raise ConfigError(
                f"rollout: prompts {start}..{start + group_size - 1} are not {group_size} copies of one prompt; "
                "GRPOTrainer's batches were expected to repeat each prompt num_generations times in a row"
            )
        groups.append(block[0])
    return groups


@dataclass
class SIDRollout:
    """`rollout_func(prompts, trainer) -> {prompt_ids, completion_ids, logprobs, item_id, beam_rank}`
    (the columns: `rlrec.tasks.reward_batch`).

    Attributes:
        index: the SID index (its item order is the constraint's).
        tokenizer: the policy's tokenizer (holds the SID tokens).
        num_generations: candidates per prompt (the GRPO group).
        mode: `beam` (top candidates of a constrained beam search, MiniOneRec) or `sample`.
        top_k: for `sample`, draw among the top-k allowed tokens (its temperature is GRPO's `temperature`,
            the one the trainer recomputes log-probs at); `beam` scores at temperature 1.
        batch_size: prompts decoded together.
        seed: for `sample`'s draws.
        add_target: put each prompt's target item into its group when the rollout missed it, in place of the
            last candidate (an off-policy positive: with the target absent every candidate of an exact-match
            reward scores 0 and the group teaches nothing). The trainer must hold the batch's targets in `targets`
            (`RecGRPOTrainer(batch_targets=rollout.targets)`); the target's log-probs are the policy's,
            teacher-forced.
        credit: which tokens of a candidate the policy gradient reaches. `sequence` (GRPO's): all of them.
            `divergence`: for a candidate other than the target, only the first token where its SID leaves the
            target's (TRL's `env_mask`); the target keeps all its tokens. A wrong item shares the target's
            prefix up to that token, so `sequence` credit pushes the target's own prefix down with it, and the
            tokens after it are choices under a wrong prefix that say nothing about this user; the one wrong
            decision is the divergence. `target`: only the target's tokens (a control: with add_target, an SFT
            step on the targets run through GRPO's loss). Both need the targets, as `add_target` does.
        rated_items: `(user_id, target) -> items` the group must hold besides its target: with the `rating` reward,
            the items of the user's next train events it scores (`rollout_add_rated`). Each one the search missed
            is put in, teacher-forced like an added target, in the slots before the target's. A beam group
            rarely holds an item the user went on to rate, so without them the reward reaches only the target;
            with them every group contrasts the items this user liked with those they disliked, as DPO's rating
            pairs do. Needs the batch's users (`BatchTargets` holds them with the targets).
        targets: the batch's targets while it is rolled out, filled by the trainer (`BatchTargets`).
    """

    index: SIDIndex
    tokenizer: Any
    num_generations: int
    mode: RolloutMode = "beam"
    top_k: int | None = None
    batch_size: int = DEFAULT_ROLLOUT_BATCH_SIZE
    seed: int = 0
    add_target: bool = False
    credit: str = "sequence"
    rated_items: Callable[[Any, Any], Sequence[str]] | None = None
    targets: BatchTargets = field(default_factory=BatchTargets)

    def __post_init__(self) -> None:
        if self.mode not in ("beam", "sample"):
            raise ConfigError(f"rollout mode must be 'beam' or 'sample', got {self.mode!r}")
        if self.credit not in CREDITS:
            raise ConfigError(f"rollout credit must be one of {CREDITS}, got {self.credit!r}")
        if self.num_generations < 2:
            raise ConfigError(f"num_generations must be at least 2 for GRPO, got {self.num_generations}")
        if self.mode == "beam" and self.num_generations > len(self.index):
            raise ConfigError(
                f"num_generations={self.num_generations} beams but the catalog has {len(self.index)} items"
            )
        self.constraint = SIDConstraint.from_index(self.index, self.tokenizer)
        self._calls = 0
        self.added_targets = 0  # groups whose target was put in by add_target
        self.added_rated = 0  # items put in by rated_items

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list]:
        from trl.models import unwrap_model_for_generation

        groups = group_prompts(prompts, self.num_generations)
        targets = users = None
        if self.add_target or self.credit != "sequence" or self.rated_items is not None:
            targets = self.targets.for_prompts(len(prompts))[:: self.num_generations]
        if self.rated_items is not None:
            users = self.targets.users_for_prompts(len(prompts))[:: self.num_generations]
        zero3 = getattr(trainer.accelerator.state, "deepspeed_plugin", None) is not None and \
            trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=zero3) as model:
            was_training = model.training
            model.eval()
            try:
                prompt_ids, items, sequences, logprobs = self.generate(
                    model, groups, targets, temperature=trainer.temperature,
                    stream=(trainer.accelerator.process_index, self._calls), users=users)
            finally:
                model.train(was_training)
        self._calls += 1
        out = self.pack(prompt_ids, items, sequences, logprobs)
        if self.credit != "sequence":
            out["env_mask"] = divergence_masks(self.tokenizer, self.index, targets, sequences,
                                               wrong_tokens=self.credit == "divergence")
        return out

    def generate(self, model: torch.nn.Module, prompts: Sequence[Any], targets: Sequence[str] | None = None,
                 temperature: float = 1.0, stream: tuple[int, ...] = (), users: Sequence[Any] | None = None
                 ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The groups of distinct `prompts` (one each): their rendered ids, then `decode`'s items, SID token ids and
        log-probs, with each group's target (`add_target`) and the user's rated items (`rated_items`, which reads
        `users`) put in where the search missed them.

        The one path from prompts to candidates: GRPO's rollout (`__call__`, the model already in eval mode) and
        `rlrec rewards` both take it, so the rewards stage scores the groups GRPO would train on.
        """
        needs_targets = self.add_target or self.rated_items is not None
        if needs_targets and (targets is None or len(targets) != len(prompts)):
            raise ConfigError("rollout add_target and rated_items need one target per prompt")
        if self.rated_items is not None and (users is None or len(users) != len(prompts)):
            raise ConfigError("rollout rated_items needs one user per prompt")
        prompt_ids = render_prompts(self.tokenizer, prompts)
        items, sequences, logprobs = self.decode(model, prompt_ids, temperature=temperature, stream=stream)
        if needs_targets:
            # the target first (the last free slot), then the user's rated items in the slots before it
            wanted = [([target] if self.add_target else [])
                      + ([item for item in self.rated_items(user, target) if item != target]
                         if self.rated_items is not None else [])
                      for user, target in zip(users or [None] * len(targets), targets, strict=True)]
            placed = add_missing_items(model, self.index, self.tokenizer, prompt_ids, wanted, items, sequences,
                                       logprobs, keep=targets)
            added_targets = sum(item == targets[p] for p, item in placed)
            self.added_targets += added_targets
            self.added_rated += len(placed) - added_targets
        return prompt_ids, items, sequences, logprobs

    def decode(self, model: torch.nn.Module, prompt_ids: list[list[int]], temperature: float = 1.0,
               stream: tuple[int, ...] = ()):
        """Candidates per prompt: item rows `(P, G)`, SID token ids `(P, G, L)`, token log-probs `(P, G, L)`.

        `stream` names the call (GRPO: the process rank and the rollout count; `rlrec rewards`: the chunk), so
        sampled rollouts draw independently on every rank and in every call, and reproducibly from `seed`.
        """
        device = next(model.parameters()).device
        constraint = self.constraint.to(device)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        parts = []
        for start in range(0, len(prompt_ids), self.batch_size):
            input_ids, attention_mask = left_pad(prompt_ids[start: start + self.batch_size], pad_id, device)
            if self.mode == "beam":
                if temperature != 1.0:
                    logger.warning_once("beam rollouts score at temperature 1; GRPO's temperature=%s is ignored",
                                        temperature)
                out = constrained_beam_search(model, input_ids, attention_mask, constraint, self.num_generations)
                if not out.valid.all():
                    raise RuntimeError("constrained beam search returned padding slots; the catalog is too small")
            else:
                generator = torch.Generator(device=device).manual_seed(draw_seed(self.seed, *stream, start))
                out = constrained_sample(model, input_ids, attention_mask, constraint, self.num_generations,
                                         temperature=temperature, top_k=self.top_k, generator=generator)
            parts.append((out.item_indices, out.sequences, out.token_logprobs))
        return tuple(torch.cat([p[i] for p in parts]).cpu() for i in range(3))

    def pack(self, prompt_ids: list[list[int]], items: torch.Tensor, sequences: torch.Tensor,
             logprobs: torch.Tensor) -> dict[str, list]:
        """One entry per completion, groups in prompt order and candidates in rank (or draw) order."""
        item_ids = self.index.item_ids
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": [], ITEM_ID: [], BEAM_RANK: []}
        for p, ids in enumerate(prompt_ids):
            for g in range(self.num_generations):
                out["prompt_ids"].append(list(ids))
                out["completion_ids"].append(sequences[p, g].tolist())
                out["logprobs"].append(logprobs[p, g].tolist())
                out[ITEM_ID].append(item_ids[int(items[p, g])])
                out[BEAM_RANK].append(g if self.mode == "beam" else None)
        return out


def draw_seed(*keys: int) -> int:
    """A 63-bit seed that differs for every tuple of keys (NumPy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@torch.no_grad()
def target_logprobs(model: torch.nn.Module, prompt_ids: list[list[int]], completions: torch.Tensor,
                    pad_id: int) -> torch.Tensor:
    """Full-vocabulary log-probs `(P, L)` of each prompt's `completions[p]` (teacher-forced), as the search scores."""
    device = next(model.parameters()).device
    sequences = [list(p) + completions[i].tolist() for i, p in enumerate(prompt_ids)]
    input_ids, attention_mask = left_pad(sequences, pad_id, device)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    length = completions.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=length + 1).logits[:, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, completions.to(device).unsqueeze(-1)).squeeze(-1).cpu()


def sid_token_ids(tokenizer: Any, index: SIDIndex, item: str) -> list[int] | None:
    """The token ids of `item`'s SID (None for an item without one): what the policy writes for it."""
    return tokenizer.convert_tokens_to_ids(index.tokens(item)) if item in index else None


def add_missing_items(model: torch.nn.Module, index: SIDIndex, tokenizer: Any, prompt_ids: list[list[int]],
                      wanted: Sequence[Sequence[str]], items: torch.Tensor, sequences: torch.Tensor,
                      logprobs: torch.Tensor, keep: Sequence[str | None] | None = None) -> list[tuple[int, str]]:
    """Put each group's `wanted[p]` items that the rollout missed into it (in place), teacher-forced; returns the
    `(group, item)` pairs that went in.

    They fill the group's slots from the last backwards, in `wanted` order, skipping a slot that holds a wanted
    item or `keep[p]` (the target, when it is not itself wanted); the top candidate is never replaced, so at most
    `G - 1` go in. Items without a SID are skipped.
    """
    position = {item: row for row, item in enumerate(index.item_ids)}
    placed: list[tuple[int, int, str]] = []  # (group, slot, item)
    for p, group_wanted in enumerate(wanted):
        present = set(items[p].tolist())
        rows = list(dict.fromkeys(position[item] for item in group_wanted if item in position))
        protected = set(rows) | ({position[keep[p]]} if keep is not None and keep[p] in position else set())
        free = [slot for slot in range(items.size(1) - 1, 0, -1) if int(items[p, slot]) not in protected]
        missing = [row for row in rows if row not in present]
        placed += [(p, slot, index.item_ids[row]) for slot, row in zip(free, missing, strict=False)]
    if not placed:
        return []
    ids = torch.tensor([sid_token_ids(tokenizer, index, item) for _, _, item in placed], dtype=torch.long)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scored = target_logprobs(model, [prompt_ids[p] for p, _, _ in placed], ids, pad_id)
    for j, (p, slot, item) in enumerate(placed):
        items[p, slot] = position[item]
        sequences[p, slot] = ids[j]
        logprobs[p, slot] = scored[j]
    return [(p, item) for p, _, item in placed]


def divergence_masks(tokenizer: Any, index: SIDIndex, targets: Sequence[str], sequences: torch.Tensor,
                     wrong_tokens: bool = True) -> list[list[int]]:
    """Per completion, 1 on the first token where it leaves its group's target SID, 0 elsewhere (all 0 without
    `wrong_tokens`); all 1 for the target itself (or when the target has no SID). Groups in prompt order,
    candidates in rank order."""
    masks = []
    for p, target in enumerate(targets):
        wanted = sid_token_ids(tokenizer, index, target)
        for row in sequences[p].tolist():
            if wanted is None or row == wanted:
                masks.append([1] * len(row))
                continue
            first = next(i for i, (a, b) in enumerate(zip(row, wanted, strict=True)) if a != b)
            masks.append([int(wrong_tokens and i == first) for i in range(len(row))])
    return masks
