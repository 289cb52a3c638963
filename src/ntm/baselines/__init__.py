"""Baseline sequence models that the NTM is compared with (the paper's stacked LSTM)."""

from ntm.baselines.lstm import LSTMConfig, LSTMModel

__all__ = ["LSTMConfig", "LSTMModel"]
