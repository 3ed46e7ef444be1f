"""Floating-point work of an encoder, from its shapes, for throughput reports (achieved TFLOP/s).

Counted: the matrix products of every layer (Q, K, V and output projections, the two FFN
matrices) at 2 FLOPs per multiply-add, and attention's two (length x length) products; not
counted: embeddings (a lookup), layer norms, softmax and biases (a few percent at these sizes).
A training step costs the forward pass three times (forward, and backward for inputs and weights).
"""
from __future__ import annotations


def encoder_forward_flops_per_token(config, seq_len: float) -> float:
    """FLOPs of one token through every layer of a BERT-family encoder at mean length `seq_len`."""
    h = config.hidden_size
    ffn = config.intermediate_size
    per_layer = 2 * (4 * h * h + 2 * h * ffn) + 2 * 2 * seq_len * h
    return float(config.num_hidden_layers * per_layer)


def distill_flops_per_token(student_config, teacher_config, seq_len: float, *, cached_teacher: bool) -> float:
    """One distillation token: the student's forward and backward, plus the teacher's forward unless its
    targets come from a cache."""
    student = 3 * encoder_forward_flops_per_token(student_config, seq_len)
    teacher = 0.0 if cached_teacher else encoder_forward_flops_per_token(teacher_config, seq_len)
    return student + teacher
