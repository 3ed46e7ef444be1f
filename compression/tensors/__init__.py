"""Tensor plumbing shared by the stages: axes (layout), selections and projections (surgery),
shapes and parameter counts (shapes), one-pass importance scores (importance), loading a parent
and saving a child (modelio). Imports no other part of compression."""
