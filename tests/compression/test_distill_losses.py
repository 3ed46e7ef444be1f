"""Each loss against values computed by hand on small tensors; padding never counts."""
from __future__ import annotations

import math

import pytest
import torch

from core.errors import ConfigError
from compression.distill.losses import (HiddenStateLoss, combine_mlm_and_logit_loss, hidden_cosine, hidden_mse, logit_kl,
                                logit_mse, make_layer_map, mlm_loss, uniform_layer_map)


def test_mlm_loss_by_hand_ignores_unlabelled_positions():
    logits = torch.tensor([[[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0], [50.0, -50.0, 0.0]]])
    labels = torch.tensor([[1, 0, -100]])  # the third position is not labelled: its huge logits must not count
    expected = (math.log(3.0) + math.log(2.0)) / 2  # -log(1/3), -log(2/4)
    assert mlm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert mlm_loss(logits, labels, "sum").item() == pytest.approx(2 * expected, rel=1e-6)


def test_logit_mse_by_hand_masks_padding():
    s = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [900.0, 900.0]]])
    t = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # per position, mean over the vocabulary: (1 + 4) / 2 = 2.5 and (4 + 9) / 2 = 6.5
    assert logit_mse(s, t, mask).item() == pytest.approx(4.5)
    assert logit_mse(s, t, mask, "sum").item() == pytest.approx(9.0)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_logit_kl_by_hand_with_temperature_squared(temperature):
    s = torch.tensor([[[0.0, 0.0], [7.0, -7.0]]])
    t = torch.tensor([[[math.log(3.0), 0.0], [-7.0, 7.0]]])
    mask = torch.tensor([[1, 0]])
    a = math.exp(math.log(3.0) / temperature)
    p_t = [a / (a + 1), 1 / (a + 1)]
    kl = sum(p * math.log(p / 0.5) for p in p_t)  # the student is uniform at position 0
    assert logit_kl(s, t, mask, temperature).item() == pytest.approx(temperature ** 2 * kl, rel=1e-5)
    assert logit_kl(t, t, torch.tensor([[1, 1]]), temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_logit_kl_rejects_non_positive_temperature():
    x = torch.zeros(1, 1, 2)
    with pytest.raises(ConfigError, match="temperature"):
        logit_kl(x, x, torch.ones(1, 1), 0.0)


def test_combination_is_alpha_weighted():
    assert combine_mlm_and_logit_loss(torch.tensor(2.0), torch.tensor(4.0)).item() == pytest.approx(3.0)
    assert combine_mlm_and_logit_loss(torch.tensor(2.0), torch.tensor(4.0), alpha=0.25).item() == pytest.approx(3.5)


def test_hidden_mse_and_cosine_by_hand():
    s = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [5.0, 5.0]]])
    t = torch.tensor([[[0.0, 1.0], [2.0, 2.0], [1.0, 1.0], [-5.0, 9.0]]])
    mask = torch.tensor([[1, 1, 1, 0]])
    # MSE per position: (1 + 1)/2 = 1, (1 + 1)/2 = 1, (0 + 1)/2 = 0.5
    assert hidden_mse(s, t, mask).item() == pytest.approx(2.5 / 3)
    # cosine distance per position: 1 (orthogonal), 0 (parallel), 1 - 1/sqrt(2)
    assert hidden_cosine(s, t, mask).item() == pytest.approx((1 + 0 + 1 - 1 / math.sqrt(2)) / 3, rel=1e-6)
    assert hidden_cosine(s, t, mask, "sum").item() == pytest.approx(2 - 1 / math.sqrt(2), rel=1e-6)


def test_layer_maps():
    assert uniform_layer_map(6, 12) == {1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12}
    assert uniform_layer_map(3, 4) == {1: 1, 2: 3, 3: 4}
    assert make_layer_map("last", 2, 3) == {2: 3}
    assert make_layer_map({"2": "1"}, 2, 3) == {2: 1}
    with pytest.raises(ConfigError, match="out of range"):
        make_layer_map({3: 1}, 2, 3)
    with pytest.raises(ConfigError):
        make_layer_map("middle", 2, 3)


def test_hidden_state_loss_same_width_has_no_projection_and_averages_layers():
    loss = HiddenStateLoss({1: 2, 2: 4}, 2, 2, "mse")
    assert len(list(loss.parameters())) == 0
    zeros = torch.zeros(1, 1, 2)
    student = (zeros, torch.ones(1, 1, 2), torch.full((1, 1, 2), 3.0))
    teacher = {2: torch.zeros(1, 1, 2), 4: torch.ones(1, 1, 2)}
    # layer 1 vs 2: MSE 1; layer 2 vs 4: MSE 4; mean over the two pairs
    assert loss(student, teacher, torch.ones(1, 1)).item() == pytest.approx(2.5)


def test_hidden_state_loss_projection_starts_as_truncation_embedding_and_gets_gradients():
    loss = HiddenStateLoss({1: 1}, student_width=2, teacher_width=3, kind="mse")
    student = (torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]))
    teacher = (None, torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 0.0]]]))
    # the projection maps [x, y] -> [x, y, 0]: only the third teacher dimension differs
    value = loss(student, teacher, torch.tensor([[1, 1]]))
    assert value.item() == pytest.approx((9.0 / 3 + 0.0) / 2)
    value.backward()
    proj = loss.projections["1"]
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_hidden_state_loss_projection_starts_from_a_given_map():
    """A student whose dimensions are the teacher's third and first (importance-style selection):
    started from that map the projection puts them back where they came from and the loss is 0;
    the truncation start puts them in the first two places. A map of the wrong shape is refused."""
    start = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])   # teacher = [s1, 0, s0]
    student = (torch.zeros(1, 1, 2), torch.tensor([[[3.0, 1.0]]]))
    teacher = (None, torch.tensor([[[1.0, 0.0, 3.0]]]))
    mask = torch.ones(1, 1)
    mapped = HiddenStateLoss({1: 1}, student_width=2, teacher_width=3, kind="mse", start=start)
    assert torch.equal(mapped.projections["1"].weight.detach(), start)
    assert mapped(student, teacher, mask).item() == pytest.approx(0.0)
    truncated = HiddenStateLoss({1: 1}, student_width=2, teacher_width=3, kind="mse")
    assert truncated(student, teacher, mask).item() == pytest.approx((4.0 + 1.0 + 9.0) / 3)   # [3, 1, 0]
    with pytest.raises(ConfigError, match=r"shape \(2, 3\), expected \(teacher width 3, student width 2\)"):
        HiddenStateLoss({1: 1}, student_width=2, teacher_width=3, start=start.T)
