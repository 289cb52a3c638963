"""Shared test setup: the same malloc tuning the `ntm` command uses, so tests run at its speed."""

from ntm.runtime import tune_malloc

tune_malloc()
