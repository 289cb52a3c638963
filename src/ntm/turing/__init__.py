"""The Neural Turing Machine (Graves et al., 2014), ntm's first memory model.

`NTMConfig` holds its sizes and choices, `NTMCell` is one step (an `nnx.RNNCellBase`), `NTM` is the
sequence layer; `addressing` and `memory` hold its pure maths, `fused` the same memory step as one
function with a hand-written gradient, `heads` the layer that emits every head's parameters, and
`controllers` the LSTM and feedforward controllers and the contract for your own.
"""

from ntm.turing.cell import NTM, NTMCell, NTMState, NTMStepTrace
from ntm.turing.config import NTMConfig

__all__ = ["NTM", "NTMCell", "NTMConfig", "NTMState", "NTMStepTrace"]
