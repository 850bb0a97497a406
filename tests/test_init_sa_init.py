"""sa_init: exactly the SID rows change, to the pooled values computed here by hand."""

import pytest
import torch

from rlrec.init import add_sid_tokens, sa_init
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.utils.errors import ConfigError

VOCAB = ["<a_0>", "<a_1>", "<a_2>", "<b_0>", "<b_1>", "<c_0>"]
KEYWORDS = [
    ["comedy", "animation"],
    ["action thriller"],
    [],  # no keywords: falls back to the vocabulary mean
    ["drama", "romance"],
    ["user history"],
    ["Toy Story"],
]


def setup(tied: bool = True):
    model, tokenizer = tiny_model_and_tokenizer(tie_word_embeddings=tied)
    ids = add_sid_tokens(tokenizer, model, VOCAB)
    return model, tokenizer, ids


def pooled(matrix: torch.Tensor, tokenizer, keywords: list[str]) -> torch.Tensor:
    sub = [t for kw in keywords for t in tokenizer(kw, add_special_tokens=False)["input_ids"]]
    assert sub and max(sub) < len(tokenizer) - len(VOCAB)
    return matrix[sub].mean(0)


def test_keywords_set_exactly_the_new_rows():
    model, tokenizer, ids = setup()
    before = model.get_input_embeddings().weight.detach().clone()
    first_sid = min(ids)
    report = sa_init(model, tokenizer, ids, KEYWORDS, match_norm=False)
    after = model.get_input_embeddings().weight.detach()

    others = [i for i in range(after.shape[0]) if i not in ids]
    assert torch.equal(after[others], before[others])
    for i, keywords in zip(ids, KEYWORDS, strict=True):
        expected = pooled(before, tokenizer, keywords) if keywords else before[:first_sid].mean(0)
        torch.testing.assert_close(after[i], expected)
    assert report["keywords"] == 5 and report["mean_vocab"] == 1 and report["no_keywords_fallback"] == 1
    # Tied: the output matrix is the same tensor.
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_levels_choose_which_tokens_get_keywords():
    model, tokenizer, ids = setup()
    before = model.get_input_embeddings().weight.detach().clone()
    mean_vocab = before[: min(ids)].mean(0)
    report = sa_init(model, tokenizer, ids, KEYWORDS, levels=[0], match_norm=False)
    after = model.get_input_embeddings().weight.detach()
    for row, (token, keywords) in enumerate(zip(VOCAB, KEYWORDS, strict=True)):
        if token.startswith("<a_") and keywords:
            torch.testing.assert_close(after[ids[row]], pooled(before, tokenizer, keywords))
        else:
            torch.testing.assert_close(after[ids[row]], mean_vocab)
    assert report["keywords"] == 2 and report["mean_vocab"] == 4


def test_untied_output_rows_pool_the_lm_head():
    model, tokenizer, ids = setup(tied=False)
    inputs = model.get_input_embeddings().weight.detach().clone()
    outputs = model.get_output_embeddings().weight.detach().clone()
    report = sa_init(model, tokenizer, ids, KEYWORDS, match_norm=False)
    new_in = model.get_input_embeddings().weight.detach()
    new_out = model.get_output_embeddings().weight.detach()
    assert not report["tied"]
    others = [i for i in range(new_out.shape[0]) if i not in ids]
    assert torch.equal(new_out[others], outputs[others])
    for i, keywords in zip(ids, KEYWORDS, strict=True):
        if keywords:
            torch.testing.assert_close(new_in[i], pooled(inputs, tokenizer, keywords))
            torch.testing.assert_close(new_out[i], pooled(outputs, tokenizer, keywords))
        else:
            torch.testing.assert_close(new_out[i], outputs[: min(ids)].mean(0))


@pytest.mark.parametrize("tied", [True, False])
def test_norm_matching_rescales_every_written_row_to_the_vocabulary_norm(tied):
    """TS-Rec's rule: the pooled direction, at the average length of the pretrained rows (lm_head: its own)."""
    model, tokenizer, ids = setup(tied=tied)
    inputs = model.get_input_embeddings().weight.detach().clone()
    outputs = model.get_output_embeddings().weight.detach().clone()
    first_sid = min(ids)
    report = sa_init(model, tokenizer, ids, KEYWORDS)  # match_norm is the default
    new_in = model.get_input_embeddings().weight.detach()
    target = inputs[:first_sid].norm(dim=1).mean()
    for i, keywords in zip(ids, KEYWORDS, strict=True):
        pooled_row = pooled(inputs, tokenizer, keywords) if keywords else inputs[:first_sid].mean(0)
        torch.testing.assert_close(new_in[i].norm(), target)
        direction = torch.nn.functional.cosine_similarity(new_in[i], pooled_row, dim=0)
        torch.testing.assert_close(direction, torch.tensor(1.0))
    assert report["norm_matched"] and report["sid_row_norm"] == pytest.approx(report["vocab_row_norm"], abs=1e-3)
    assert report["keyword_row_norm"] == pytest.approx(report["vocab_row_norm"], abs=1e-3)
    plain = pooled(inputs, tokenizer, KEYWORDS[0]).norm()
    assert plain < 0.9 * target  # the plain mean is shorter: what matching corrects
    if not tied:
        new_out = model.get_output_embeddings().weight.detach()
        out_target = outputs[:first_sid].norm(dim=1).mean()
        torch.testing.assert_close(new_out[ids].norm(dim=1), out_target.expand(len(ids)))
        assert report["sid_output_row_norm"] == pytest.approx(report["vocab_output_row_norm"], abs=1e-3)
    # mean_vocab stays the plain mean (the ablation's neutral baseline).
    model, tokenizer, ids = setup(tied=tied)
    report = sa_init(model, tokenizer, ids, KEYWORDS, mode="mean_vocab")
    assert not report["norm_matched"]


@pytest.mark.parametrize("tied", [True, False])
def test_centering_subtracts_each_levels_mean_keyword_row(tied):
    """Each level's keyword rows lose their shared mean before the norm matching; a level with one keyword row
    (here `c`) and the keyword-less fallback stay as without centring."""
    model, tokenizer, ids = setup(tied=tied)
    matrices = [model.get_input_embeddings().weight.detach().clone()]
    if not tied:
        matrices.append(model.get_output_embeddings().weight.detach().clone())
    plain = sa_init(*setup(tied=tied), KEYWORDS)
    report = sa_init(model, tokenizer, ids, KEYWORDS, center=True)
    written = [model.get_input_embeddings().weight.detach()]
    if not tied:
        written.append(model.get_output_embeddings().weight.detach())
    first_sid = min(ids)
    for before, after in zip(matrices, written, strict=True):
        rows = {t: pooled(before, tokenizer, k) for t, k in zip(VOCAB, KEYWORDS, strict=True) if k}
        expected = {
            "<a_0>": rows["<a_0>"] - (rows["<a_0>"] + rows["<a_1>"]) / 2,
            "<a_1>": rows["<a_1>"] - (rows["<a_0>"] + rows["<a_1>"]) / 2,
            "<a_2>": before[:first_sid].mean(0),
            "<b_0>": rows["<b_0>"] - (rows["<b_0>"] + rows["<b_1>"]) / 2,
            "<b_1>": rows["<b_1>"] - (rows["<b_0>"] + rows["<b_1>"]) / 2,
            "<c_0>": rows["<c_0>"],
        }
        target = before[:first_sid].norm(dim=1).mean()
        for token, sid_id in zip(VOCAB, ids, strict=True):
            torch.testing.assert_close(after[sid_id].norm(), target)
            cosine = torch.nn.functional.cosine_similarity(after[sid_id], expected[token], dim=0)
            torch.testing.assert_close(cosine, torch.tensor(1.0))
    # Two keyword rows a level, centred: opposite directions, so the within-level cosine is -1.
    assert report["centered"] and report["keyword_row_cosine"] == pytest.approx(-1.0, abs=1e-4)
    assert not plain["centered"] and plain["keyword_row_cosine"] > -0.5
    # Before the centring the rows are plain SA-Init's (the rescaling keeps directions, so the cosines agree).
    assert report["keyword_row_cosine_pooled"] == pytest.approx(plain["keyword_row_cosine"], abs=1e-4)
    assert report["center_kept_uncentred"] == 0
    with pytest.raises(ConfigError, match="center needs match_norm"):
        sa_init(*setup(tied=tied), KEYWORDS, center=True, match_norm=False)


def test_centering_keeps_rows_it_would_empty():
    """A level whose keyword rows are all alike would centre to zero vectors: they keep their uncentred value."""
    model, tokenizer, ids = setup()
    before = model.get_input_embeddings().weight.detach().clone()
    alike = [*KEYWORDS[:3], ["drama"], ["drama"], KEYWORDS[5]]
    report = sa_init(model, tokenizer, ids, alike, center=True)
    after = model.get_input_embeddings().weight.detach()
    target = before[: min(ids)].norm(dim=1).mean()
    drama = pooled(before, tokenizer, ["drama"])
    for sid_id in ids[3:5]:
        torch.testing.assert_close(after[sid_id].norm(), target)
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(after[sid_id], drama, dim=0),
                                   torch.tensor(1.0))
    assert report["center_kept_uncentred"] == 2 and report["centered"]
    # level a still centred (-1), level b's two identical rows (+1): the mean over levels is 0.
    assert report["keyword_row_cosine"] == pytest.approx(0.0, abs=1e-4)


def test_layer_pooling_differs_and_keeps_embedding_scale():
    model, tokenizer, ids = setup()
    sa_init(model, tokenizer, ids, KEYWORDS)
    by_embedding = model.get_input_embeddings().weight[ids].detach().clone()
    before = model.get_input_embeddings().weight.detach().clone()
    report = sa_init(model, tokenizer, ids, KEYWORDS, layer=1)
    after = model.get_input_embeddings().weight.detach()
    others = [i for i in range(after.shape[0]) if i not in ids]
    assert torch.equal(after[others], before[others])
    keyword_rows = [k for k, kw in enumerate(KEYWORDS) if kw]
    assert not torch.allclose(after[ids][keyword_rows], by_embedding[keyword_rows])
    assert torch.isfinite(after[ids]).all()
    # Mapped into the input space: no row far above the scale of the vocabulary rows.
    assert after[ids].norm(dim=1).max() < 3 * before[: min(ids)].norm(dim=1).max()
    assert report["layer"] == 1 and report["keywords"] == 5
    with pytest.raises(ConfigError, match="sa_init_layer"):
        sa_init(model, tokenizer, ids, KEYWORDS, layer=99)


def test_mean_vocab_and_none_modes():
    model, tokenizer, ids = setup()
    before = model.get_input_embeddings().weight.detach().clone()
    report = sa_init(model, tokenizer, ids, None, mode="none")
    assert report["untouched"] == len(ids)
    assert torch.equal(model.get_input_embeddings().weight, before)
    sa_init(model, tokenizer, ids, None, mode="mean_vocab")
    after = model.get_input_embeddings().weight.detach()
    torch.testing.assert_close(after[ids], before[: min(ids)].mean(0).expand(len(ids), -1))
    with pytest.raises(ConfigError, match="one list per SID token"):
        sa_init(model, tokenizer, ids, KEYWORDS[:2])
    with pytest.raises(ConfigError, match="mode"):
        sa_init(model, tokenizer, ids, KEYWORDS, mode="random")


def test_init_from_sid_index():
    import numpy as np

    from rlrec.init import index_keywords, init_sid_embeddings
    from rlrec.sid.index import SIDIndex

    texts = ["Toy Story animation comedy", "Toy Story sequel animation", "GoldenEye action thriller", "Copycat drama"]
    index = SIDIndex([f"i{i}" for i in range(4)], np.array([[0, 0], [0, 1], [1, 0], [2, 1]]), [4, 2])
    keywords = index_keywords(index, texts, top_k=3)
    assert set(keywords) == {"<a_0>", "<a_1>", "<a_2>", "<b_0>", "<b_1>"} and index.keywords is keywords
    assert "animation" in keywords["<a_0>"] and "story" in keywords["<a_0>"]

    model, tokenizer = tiny_model_and_tokenizer()
    ids, report = init_sid_embeddings(model, tokenizer, index, levels=[0])
    assert tokenizer.convert_ids_to_tokens(ids) == index.vocabulary()
    # <a_3> is unused (no keywords); the two <b_*> tokens are outside levels=[0].
    assert report["keywords"] == 3 and report["no_keywords_fallback"] == 1 and report["mean_vocab"] == 3
    with pytest.raises(ConfigError, match="sa_init_levels"):
        init_sid_embeddings(model, tokenizer, index, levels=[2])


def test_hidden_state_stops_early_but_matches_the_full_pass():
    from rlrec.init.sa_init import hidden_state

    model, tokenizer = tiny_model_and_tokenizer(num_layers=3)
    batch = tokenizer(["Toy Story comedy", "action"], return_tensors="pt", padding=True)
    full = model(**batch, output_hidden_states=True).hidden_states
    for layer in range(4):
        got = hidden_state(model, batch["input_ids"], batch["attention_mask"], layer)
        torch.testing.assert_close(got, full[layer])
