"""Language-model lab core: corpus, model, the [B, S, V] KD reductions and vocabulary alignment,
each checked against an independent computation by hand loops."""
from __future__ import annotations

import io
import math

import pytest
import torch

from kdviz.lm.corpus import NAMES_VOCAB, Vocab, check_word, encode_batch, load_names, split_names
from kdviz.lm.kd import (align_logits, bsv_worked_example, check_vocab, dropped_mass, effective_kd_share, kd_batchmean,
                         kd_term, per_position_kd, to_teacher_ids, vocab_map)
from kdviz.lm.model import STUDENT, LMCheckpoint, LMConfig, load_lm, make_lm, save_lm
from kdviz.lm.runs import OTHER_VOCAB, reindexed
from kdviz.lm.train import LMTrainConfig, evaluate_bpc, sample
from kdviz.lm.view import pad_to, reduction_rows, token_view

TINY = LMConfig(n_layer=1, n_head=2, d_model=8, dropout=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: two threads were 10× slower on a shared CPU


def _softmax(row, T):
    m = max(row)
    e = [math.exp((z - m) / T) for z in row]
    return [v / sum(e) for v in e]


def _kl(t_row, s_row, T):
    pt, ps = _softmax(t_row, T), _softmax(s_row, T)
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps)) * T * T


def _logits(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


# ----------------------------------------------------------------------------- corpus
def test_corpus_is_real_names_and_the_split_is_fixed():
    names = load_names()
    assert len(names) > 5000 and {"mary", "james"} <= set(names)
    assert all(not NAMES_VOCAB.outside(n) for n in names)
    train, val = split_names()
    assert (train, val) == split_names() and not set(train) & set(val) and len(train) + len(val) == len(names)


def test_encode_batch_pads_right_with_ignored_targets():
    b = encode_batch(["ab", "c"])
    assert b.x.tolist() == [[0, 1, 2], [0, 3, 0]]
    assert b.y.tolist() == [[1, 2, 0], [3, 0, -100]]
    assert b.mask.tolist() == [[True, True, True], [True, True, False]]


@pytest.mark.parametrize("word, needle", [("", "empty string"), ("x" * 16, "16 characters"), ("zoë-1", "['-', '1', 'ë']"),
                                          ("a.b", "boundary token")])
def test_bad_words_are_refused_with_a_message(word, needle):
    with pytest.raises(ValueError, match=None) as err:
        check_word(word)
    assert needle in str(err.value)


def test_vocab_refuses_duplicates_and_names_unknown_characters():
    with pytest.raises(ValueError, match="distinct"):
        Vocab(".aa")
    with pytest.raises(ValueError, match=r"\['Z'\]"):
        NAMES_VOCAB.encode("aZ")


# ----------------------------------------------------------------------------- model
def test_model_is_causal_and_returns_bsv_logits():
    model = make_lm(TINY, 0).eval()
    x = torch.tensor([[0, 5, 6, 7], [0, 5, 6, 9]])
    out = model(x)
    assert out.shape == (2, 4, 27)
    assert torch.allclose(out[0, :3], out[1, :3], atol=1e-6)  # a later token never changes earlier predictions
    assert not torch.allclose(out[0, 3], out[1, 3])
    with pytest.raises(ValueError, match="S <= 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = make_lm(TINY, 3).eval()
    path = save_lm(tmp_path / "m.pt", model, NAMES_VOCAB, {"val_bpc": 2.5})
    raw = torch.load(path, weights_only=True)  # plain data only: no pickled classes
    assert raw["vocab"] == NAMES_VOCAB.chars
    loaded = load_lm(path)
    x = torch.tensor([[0, 1, 2]])
    assert torch.equal(loaded.model(x), model(x)) and loaded.meta == {"val_bpc": 2.5}
    with pytest.raises(ValueError, match="could not be read"):
        load_lm(io.BytesIO(b"not a checkpoint"))


def test_bits_per_character_matches_a_hand_sum():
    model = make_lm(TINY, 1).eval()
    words = ["ann", "bo", "christopher"]
    total, count = 0.0, 0
    for w in words:
        ids = [0] + NAMES_VOCAB.encode(w) + [0]
        logits = model(torch.tensor([ids[:-1]]))[0].double()
        for pos, target in enumerate(ids[1:]):
            total -= math.log(_softmax(logits[pos].tolist(), 1.0)[target])
            count += 1
    assert evaluate_bpc(model, words) == pytest.approx(total / count / math.log(2), rel=1e-5)


def test_sampling_refuses_bad_temperatures_and_draws_names():
    model = make_lm(TINY, 0)
    for bad in (0, -1.0, float("nan"), 99.0):
        with pytest.raises(ValueError, match="sampling temperature"):
            sample(model, temperature=bad)
    names = sample(model, n=5, temperature=1.0, seed=3)
    assert len(names) == 5 and names == sample(model, n=5, temperature=1.0, seed=3)
    assert all(len(n) <= 15 and not NAMES_VOCAB.outside(n) for n in names)


def test_train_config_refuses_bad_values():
    for kwargs, needle in (({"steps": 0}, "steps"), ({"lr": -1.0}, "learning rate"), ({"alpha": 1.5}, "alpha"),
                           ({"T": 0}, "temperature"), ({"reduction": "sum"}, "reduction")):
        with pytest.raises(ValueError, match=needle):
            LMTrainConfig(**kwargs)


# ----------------------------------------------------------------------------- reductions
def test_masked_token_kd_over_bsv_equals_a_hand_loop():
    s, t = _logits(0, 2, 4, 5), _logits(1, 2, 4, 5)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    T = 2.0
    counted = [_kl(t[b, i].tolist(), s[b, i].tolist(), T) for b in range(2) for i in range(4) if mask[b, i]]
    assert float(kd_term(s, t, T, mask, "token")) == pytest.approx(sum(counted) / len(counted), rel=1e-9)


def test_batchmean_is_the_sum_over_all_positions_divided_by_b():
    s, t = _logits(2, 3, 5, 4), _logits(3, 3, 5, 4)
    T = 1.5
    every = [_kl(t[b, i].tolist(), s[b, i].tolist(), T) for b in range(3) for i in range(5)]
    assert float(kd_batchmean(s, t, T)) == pytest.approx(sum(every) / 3, rel=1e-9)
    mask = torch.ones(3, 5, dtype=torch.bool)
    assert float(kd_term(s, t, T, mask, "batchmean")) == pytest.approx(5 * float(kd_term(s, t, T, mask, "token")), rel=1e-9)
    with pytest.raises(ValueError, match="reduction"):
        kd_term(s, t, T, mask, "mean")


def test_effective_kd_share():
    assert effective_kd_share(0.5, 1.0) == pytest.approx(0.5)
    assert effective_kd_share(0.5, 10.0) == pytest.approx(10 / 11)
    assert effective_kd_share(0.2, 8.0) == pytest.approx(1.6 / 2.4)


def test_bsv_worked_example_steps():
    s, t = _logits(4, 2, 3, 3), _logits(5, 2, 3, 3)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    r = bsv_worked_example(s, t, mask, 2.0)
    hand = [[_kl(t[b, i].tolist(), s[b, i].tolist(), 2.0) for i in range(3)] for b in range(2)]
    assert [x for row in r["per_position"] for x in row] == pytest.approx([x for row in hand for x in row])
    assert r["batchmean"] == pytest.approx(sum(map(sum, hand)) / 2)
    assert r["token_mean"] == pytest.approx(sum(map(sum, hand)) / 6)
    assert r["masked_token_mean"] == pytest.approx((sum(hand[0]) + sum(hand[1][:2])) / 5)
    assert (r["B"], r["positions"], r["counted"]) == (2, 6, 5)


def test_per_position_kd_matches_hand_kl():
    s, t = _logits(6, 4, 6), _logits(7, 4, 6)
    assert per_position_kd(s, t, 3.0) == pytest.approx([_kl(t[i].tolist(), s[i].tolist(), 3.0) for i in range(4)])


# ----------------------------------------------------------------------------- vocabulary alignment
def test_mismatched_vocabularies_are_refused_naming_both_sizes():
    with pytest.raises(ValueError, match=r"29 tokens.*27 tokens"):
        check_vocab(OTHER_VOCAB, NAMES_VOCAB)
    with pytest.raises(ValueError, match="same size, different order"):
        check_vocab(Vocab(".ba"), Vocab(".ab"))
    with pytest.raises(ValueError, match=r"cannot read student characters \['c'\]"):
        vocab_map(Vocab(".ab"), Vocab(".abc"))


def test_alignment_renormalises_onto_the_shared_vocabulary_and_reports_dropped_mass():
    teacher, student = Vocab(".x-ba"), Vocab(".ab")
    vmap = vocab_map(teacher, student)
    logits = _logits(8, 2, 5)
    T = 2.0
    aligned = torch.softmax(align_logits(logits, vmap) / T, dim=-1)
    for row, out in zip(logits.tolist(), aligned.tolist()):
        p = dict(zip(teacher.chars, _softmax(row, T)))
        kept = p["."] + p["a"] + p["b"]
        assert out == pytest.approx([p["."] / kept, p["a"] / kept, p["b"] / kept])
    lost = [sum(v for c, v in zip(teacher.chars, _softmax(row, T)) if c in "x-") for row in logits.tolist()]
    assert dropped_mass(logits, vmap, T) == pytest.approx(sum(lost) / 2)
    assert vmap.dropped == ("x", "-")


def test_a_reindexed_teacher_aligned_back_gives_the_original_distribution():
    original = make_lm(TINY, 5).eval()
    ckpt = reindexed(LMCheckpoint(original, NAMES_VOCAB, {}), OTHER_VOCAB)
    assert ckpt.vocab.size == 29 and ckpt.model.cfg.vocab_size == 29
    vmap = vocab_map(ckpt.vocab, NAMES_VOCAB)
    x = encode_batch(["emma", "liam"]).x
    back = align_logits(ckpt.model(to_teacher_ids(x, vmap)), vmap)
    assert torch.allclose(torch.softmax(back, -1), torch.softmax(original(x), -1), atol=1e-5)
    assert 0 < dropped_mass(ckpt.model(to_teacher_ids(x, vmap)), vmap, 1.0) < 0.2


# ----------------------------------------------------------------------------- views
def test_token_view_marks_padding_and_uses_kd_per_position():
    teacher, student = make_lm(TINY, 0), make_lm(STUDENT, 1)
    v = token_view(teacher, student, "Ava", 2.0)
    assert v["positions"][:4] == ["after '.'", "after '.a'", "after '.av'", "after '.ava'"]
    assert v["excluded"] == [False] * 4 + [True] * 2 and v["targets"] == ["a", "v", "a", "."]
    assert len(v["teacher"]) == 6 and all(sum(row) == pytest.approx(1.0) for row in v["student"])
    b = pad_to(encode_batch(["ava"]), 6)
    s, t = student(b.x)[0].double(), teacher(b.x)[0].double()
    assert v["kd"] == pytest.approx([_kl(t[i].tolist(), s[i].tolist(), 2.0) for i in range(6)], rel=1e-4)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_view(teacher, student, "a1", 2.0)


def test_reduction_rows_show_batchmean_growing_with_length_and_the_masked_mean_constant():
    teacher, student = make_lm(TINY, 0), make_lm(STUDENT, 1)
    rows = reduction_rows(teacher, student, 2.0, 0.5, ["ann", "bo", "jo"])
    assert [r["length"] for r in rows] == list(range(4, 17))
    assert all(r["masked_token_mean"] == pytest.approx(rows[0]["masked_token_mean"], rel=1e-5) for r in rows)
    assert all(b["batchmean"] > a["batchmean"] for a, b in zip(rows, rows[1:]))
    assert all(r["token_share"] == 0.5 and r["batchmean_share"] > 0.5 for r in rows)


def test_bsv_calculator_input_parsing():
    from kdviz.lm.kd import lengths_mask, parse_bsv

    z = parse_bsv("1, 2; 3, 4 | 5, 6; 7, 8", "teacher logits")
    assert z.shape == (2, 2, 2) and z[1, 0].tolist() == [5.0, 6.0]
    with pytest.raises(ValueError, match=r"teacher logits: every sequence"):
        parse_bsv("1, 2; 3 | 5, 6; 7, 8", "teacher logits")
    with pytest.raises(ValueError, match="numbers separated"):
        parse_bsv("1, x", "student logits")
    assert lengths_mask("3, 1", 2, 3).tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(ValueError, match=r"need 2 numbers in \[1, 3\]"):
        lengths_mask("4, 1", 2, 3)
