"""NTMConfig: every size and choice of a Neural Turing Machine in one validated, frozen dataclass.

Defaults are the paper's copy-task machine (memory 128 x 20, one LSTM controller layer of 100
units, one read and one write head, shifts of -1, 0, +1) with the stabilising choices of
Collier & Beel 2018 (constant memory init of 1e-6, controller outputs clipped to +-20, fixed
initial weightings and reads).
"""

from __future__ import annotations

import dataclasses

from ntm.dictconfig import (
    CLIP_HELP,
    DTYPE_HELP,
    DTYPES,
    PARAM_DTYPE_HELP,
    DictConfig,
    check_bool,
    check_choice,
    check_number,
    option,
)

CONTROLLERS = ("lstm", "feedforward")
MEMORY_INITS = ("constant", "random", "learned")
# "fused": fused.memory_step (one function, hand-written gradient); "plain": the addressing and
# memory functions one after another, as written in addressing and memory (all in ntm.turing).
MEMORY_STEPS = ("fused", "plain")
ACTIVATIONS = ("tanh", "relu", "sigmoid", "gelu", "identity")
# `controller` of a model built with a user's controller module: "user:<module>.<class>".
USER_CONTROLLER_PREFIX = "user:"

__all__ = ["ACTIVATIONS", "CONTROLLERS", "MEMORY_INITS", "MEMORY_STEPS", "USER_CONTROLLER_PREFIX", "DictConfig",
           "NTMConfig"]


@dataclasses.dataclass(frozen=True)
class NTMConfig(DictConfig):
    """Sizes and choices of an NTM. Bad values raise ValueError naming the field, and so does a field set
    where it cannot take effect (`controller_activation` with an LSTM controller, `memory_init_value`
    with a random memory), naming the field that prevents it.

    `controller` is "lstm" or "feedforward"; an NTM built with a user's controller module records
    "user:<module>.<class>" here, so a saved config says what it ran with (`ntm.load` then needs
    that controller passed in). `dtype` is the dtype of the computation, carry and outputs;
    `param_dtype` that of the parameters ("float64" needs `jax.config.update("jax_enable_x64", True)`).
    """

    input_size: int
    output_size: int
    memory_slots: int = option(128, "memory slots N")
    memory_width: int = option(20, "width M of each memory slot")
    address_size: int = option(0, "size A of a trainable address per memory slot that content lookups match and "
                               "writes never change (Dynamic NTM); keys become A + M wide; 0: no addresses")
    read_heads: int = option(1, "read heads")
    write_heads: int = option(1, "write heads")
    shift_range: int = option(3, "size of the shift kernel (odd; 3 = shifts -1, 0, +1)")
    controller: str = option("lstm", "the controller network", CONTROLLERS)
    controller_layers: int = option(1, "controller layers")
    controller_units: int = option(100, "units per controller layer")
    controller_activation: str = option("tanh", "activation of the feedforward controller", ACTIVATIONS)
    memory_init: str = option("constant", "initial memory: constant (Collier & Beel), random, or learned",
                              MEMORY_INITS)
    memory_init_value: float = option(1e-6, "value of the constant (and start of the learned) memory")
    learn_initial_weights: bool = option(False, "learn the initial weightings instead of starting at slot 0")
    learn_initial_reads: bool = option(False, "learn the initial read vectors")
    erase_bias: float = option(0.0, "initial bias of the write heads' erase logits: erase = sigmoid(bias) at the "
                               "start; negative values start with writes that accumulate rather than replace")
    clip_value: float | None = option(20.0, CLIP_HELP)
    memory_step: str = option("fused", "how each step addresses, reads and writes the memory: fused (one function "
                              "with a hand-written gradient, faster) or plain (the functions one after another)",
                              MEMORY_STEPS)
    dtype: str = option("float32", DTYPE_HELP, DTYPES)
    param_dtype: str = option("float32", PARAM_DTYPE_HELP, DTYPES)

    def __post_init__(self) -> None:
        self.check_positive_ints("input_size", "output_size", "memory_slots", "memory_width", "read_heads",
                                 "write_heads", "shift_range")
        if self.shift_range % 2 != 1:
            raise ValueError(f"shift_range must be odd (centred shifts), got {self.shift_range}")
        if self.shift_range > self.memory_slots:
            raise ValueError(
                f"shift_range must be at most memory_slots ({self.memory_slots}), "
                f"got {self.shift_range}"
            )
        if not self.user_controller:
            check_choice("controller", self.controller, CONTROLLERS)
        elif len(self.controller) == len(USER_CONTROLLER_PREFIX):
            raise ValueError(f"controller must name the class after {USER_CONTROLLER_PREFIX!r}, got {self.controller!r}")
        self.check_positive_ints("controller_layers", "controller_units")
        self.check_positive_ints("address_size", minimum=0)
        check_choice("controller_activation", self.controller_activation, ACTIVATIONS)
        check_choice("memory_init", self.memory_init, MEMORY_INITS)
        check_choice("memory_step", self.memory_step, MEMORY_STEPS)
        self._store("memory_init_value", check_number("memory_init_value", self.memory_init_value))
        self._store("erase_bias", check_number("erase_bias", self.erase_bias))
        check_bool("learn_initial_weights", self.learn_initial_weights)
        check_bool("learn_initial_reads", self.learn_initial_reads)
        self.normalize_clip_value()
        self.normalize_dtypes()
        # Settings that cannot take effect are refused rather than recorded as if they had.
        self.refuse_without_effect("controller_activation", self.controller == "feedforward",
                                   f"with controller={self.controller!r} (only the feedforward controller takes "
                                   f"an activation)")
        self.refuse_without_effect("memory_init_value", self.memory_init != "random" or self.learn_initial_reads,
                                   "with memory_init='random' and learn_initial_reads=False (it is the value of the "
                                   "constant memory, the start of the learned one and of learned initial reads)")

    @property
    def user_controller(self) -> bool:
        """Whether this config was recorded for a user's own controller module."""
        return isinstance(self.controller, str) and self.controller.startswith(USER_CONTROLLER_PREFIX)

    @property
    def controller_input_size(self) -> int:
        """The width of what the controller receives each step: the input and every previous read.

        A user controller must accept inputs [B, controller_input_size] and return outputs
        [B, output_size] for its own `output_size` (the heads and output layer are sized from it).
        """
        return self.input_size + self.read_heads * self.memory_width

    @property
    def key_size(self) -> int:
        """The width of every head's key: the slot's address (if any) and its content, A + M."""
        return self.address_size + self.memory_width

    @property
    def head_parameter_size(self) -> int:
        """Per step: keys, strengths, gates, shifts, gammas for all heads; erase and add for writers."""
        per_head = self.key_size + 1 + 1 + self.shift_range + 1
        return (self.read_heads + self.write_heads) * per_head + self.write_heads * 2 * self.memory_width
