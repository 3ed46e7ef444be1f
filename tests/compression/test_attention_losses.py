"""The self-attention losses against values computed by hand on tiny tensors."""
import math

import pytest
import torch

from compression.distill.attention_losses import (QKVCapture, attention_score_mse, minilm_relation_loss,
                                                  relation_kl, relation_log_probs)
from core.errors import ConfigError


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def test_relation_of_one_head_by_hand():
    # one sequence of two tokens, width 1, one head: relation[i][j] = softmax_j(x_i * x_j)
    x = torch.tensor([[[1.0], [2.0]]])
    mask = torch.tensor([[1, 1]])
    got = relation_log_probs(x, mask, 1).exp()[0, 0]
    assert torch.allclose(got[0], torch.tensor(_softmax([1.0, 2.0])), atol=1e-6)
    assert torch.allclose(got[1], torch.tensor(_softmax([2.0, 4.0])), atol=1e-6)


def test_relation_kl_by_hand_and_masking():
    s = torch.tensor([[[1.0], [2.0], [9.0]]])
    t = torch.tensor([[[1.0], [0.0], [-9.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding: neither a query nor a key
    p_s = [_softmax([1.0, 2.0]), _softmax([2.0, 4.0])]
    p_t = [_softmax([1.0, 0.0]), _softmax([0.0, 0.0])]
    kl = [sum(pt * math.log(pt / ps) for pt, ps in zip(p_t[i], p_s[i])) for i in range(2)]
    assert relation_kl(s, t, mask, 1, "sum").item() == pytest.approx(sum(kl), rel=1e-5)
    assert relation_kl(s, t, mask, 1, "mean").item() == pytest.approx(sum(kl) / 2, rel=1e-5)
    assert relation_kl(t, t, mask, 1).item() == pytest.approx(0.0, abs=1e-6)


def test_heads_split_the_width_and_widths_may_differ():
    torch.manual_seed(0)
    mask = torch.ones(2, 5, dtype=torch.long)
    student, teacher = [torch.randn(2, 5, 8) for _ in range(3)], [torch.randn(2, 5, 12) for _ in range(3)]
    loss = minilm_relation_loss(student, teacher, mask, 4)
    expected = sum(relation_kl(a, b, mask, 4) for a, b in zip(student, teacher)) / 3
    assert loss.item() == pytest.approx(expected.item()) and loss.item() > 0
    with pytest.raises(ConfigError, match="not divisible"):
        minilm_relation_loss(student, teacher, mask, 3)


def test_attention_score_mse_by_hand():
    # one head of width 1: score[i][j] = q_i * k_j; masked keys count as 0 and are not averaged over
    qs, ks = torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[3.0], [1.0]]])
    qt, kt = torch.tensor([[[0.0], [1.0]]]), torch.tensor([[[1.0], [1.0]]])
    mask = torch.tensor([[1, 1]])
    s = [[3.0, 1.0], [6.0, 2.0]]
    t = [[0.0, 0.0], [1.0, 1.0]]
    per_pos = [sum((s[i][j] - t[i][j]) ** 2 for j in range(2)) / 2 for i in range(2)]
    got = attention_score_mse((qs, ks), (qt, kt), mask, 1, "sum")
    assert got.item() == pytest.approx(sum(per_pos))
    short = attention_score_mse((qs, ks), (qt, kt), torch.tensor([[1, 0]]), 1, "sum")
    assert short.item() == pytest.approx((3.0 - 0.0) ** 2)  # one query, one key


def test_capture_takes_the_projections_of_the_layer():
    from transformers import BertConfig, BertModel
    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=16)).eval()
    ids = torch.tensor([[1, 2, 3]])
    with QKVCapture(model, [2]) as cap:
        out = model(input_ids=ids, output_hidden_states=True)
    q, k, v = cap.get(2)
    attn = model.encoder.layer[1].attention.self
    h = out.hidden_states[1]
    assert torch.allclose(q, attn.query(h), atol=1e-6) and torch.allclose(v, attn.value(h), atol=1e-6)
    with pytest.raises(ConfigError, match="cannot find encoder layer 3"):
        QKVCapture(model, [3]).__enter__()
