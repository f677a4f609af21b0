"""The LSTM member's network (imports torch: only with the train extra installed)."""
from __future__ import annotations

import numpy as np
import torch

from engine.features.vector import N_FEATURES
from engine.models.learners import HIDDEN, LAYERS, N_CLASSES, state_names  # noqa: F401



class StepLSTM(torch.nn.Module):
    """Standardise -> LSTM(64, 2 layers) -> linear -> softmax.

    ``forward(x [B, 25], h, c [2, B, 64]) -> probs [B, 3], h', c'`` is one step (what is
    exported to ONNX); ``seq_logits(xs [T, B, 25], h, c)`` runs T steps (training)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.asarray(std), dtype=torch.float32))
        self.lstm = torch.nn.LSTM(N_FEATURES, HIDDEN, LAYERS)
        self.head = torch.nn.Linear(HIDDEN, N_CLASSES)

    def seq_logits(self, xs, h, c):
        y, (h, c) = self.lstm((xs - self.mean) / self.std, (h, c))
        return self.head(y), h, c

    def forward(self, x, h, c):
        logits, h2, c2 = self.seq_logits(x.unsqueeze(0), h, c)
        return torch.softmax(logits[0], dim=-1), h2, c2


class ExportStep(torch.nn.Module):
    """The trained StepLSTM as one explicit step, built for a small ONNX graph.

    Same function, rearranged: the standardisation folded into the first layer's weights,
    input and recurrent weights of each layer stacked into one matrix (one MatMul on
    [x, h]), the gates reordered (i, f, o | g) so one Sigmoid and one Tanh cover them,
    state as one [1, 64] tensor per layer and kind (no Split/Concat of a stacked state).
    ONNX Runtime's LSTM operator costs ~12 us per layer for a single step here; this graph
    is about 25 small nodes."""

    def __init__(self, net: StepLSTM, feature_mask=None):
        super().__init__()
        H = HIDDEN
        lstm = net.lstm
        mean, std = net.mean.detach(), net.std.detach()
        order = torch.cat([torch.arange(0, H), torch.arange(H, 2 * H), torch.arange(3 * H, 4 * H),
                           torch.arange(2 * H, 3 * H)])       # torch (i, f, g, o) -> (i, f, o, g)
        for layer in range(LAYERS):
            w_ih = getattr(lstm, f"weight_ih_l{layer}").detach()[order]
            w_hh = getattr(lstm, f"weight_hh_l{layer}").detach()[order]
            b = (getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")).detach()[order]
            if layer == 0:                                    # W (x - m) / s = (W / s) x - W m / s
                b = b - (w_ih / std) @ mean
                w_ih = w_ih / std
                if feature_mask is not None:                  # excluded features: no weight at all
                    w_ih = w_ih * torch.tensor(np.asarray(feature_mask), dtype=torch.float32)
            self.register_buffer(f"W{layer}", torch.cat([w_ih, w_hh], 1).t().contiguous())
            self.register_buffer(f"b{layer}", b.contiguous())
        self.register_buffer("Wh", net.head.weight.detach().t().contiguous())
        self.register_buffer("bh", net.head.bias.detach().contiguous())

    def forward(self, x, *state):
        """x [1, 25], then h0, c0, h1, c1 ([1, 64] each) -> probs [1, 3], h0', c0', h1', c1'."""
        H = HIDDEN
        z = x
        out = []
        for layer in range(LAYERS):
            h, c = state[2 * layer], state[2 * layer + 1]
            zh = torch.cat([z, h], 1)
            W, b = getattr(self, f"W{layer}"), getattr(self, f"b{layer}")
            # two Gemms, each straight into its activation: ONNX Runtime fuses each pair
            i, f, o = torch.split(torch.sigmoid(zh @ W[:, :3 * H] + b[:3 * H]), H, 1)
            cn = f * c + i * torch.tanh(zh @ W[:, 3 * H:] + b[3 * H:])
            hn = o * torch.tanh(cn)
            out += [hn, cn]
            z = hn
        return (torch.softmax(z @ self.Wh + self.bh, -1), *out)
