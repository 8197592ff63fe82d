"""The PyTorch (CPU) side of the engine benchmark: the same NCF-MLP, the same batches.

Two peers: dense embeddings with `torch.optim.Adam` on every parameter, and
`nn.Embedding(sparse=True)` tables with `torch.optim.SparseAdam` (only the touched rows'
moments move) plus Adam for the dense layers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.engine_workload import HIDDEN_UNITS, LEARNING_RATE, Batch

__all__ = ["TORCH_OPTIMIZERS", "torch_trainer"]

TORCH_OPTIMIZERS = {
    False: "torch.optim.Adam on every parameter (dense embedding gradients)",
    True: "torch.optim.SparseAdam for the sparse=True embeddings + torch.optim.Adam for the "
    "dense layers",
}


def torch_trainer(weights: dict[str, np.ndarray], sparse: bool = False) -> Callable[[Batch], float]:
    """A function that runs one Adam step on a batch and returns the loss.

    `sparse`: embeddings give sparse gradients, updated by SparseAdam (see TORCH_OPTIMIZERS).
    """
    import torch
    from torch import nn

    class NcfMlp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user = nn.Embedding.from_pretrained(
                torch.from_numpy(weights["user_embedding"].copy()), freeze=False, sparse=sparse
            )
            self.item = nn.Embedding.from_pretrained(
                torch.from_numpy(weights["item_embedding"].copy()), freeze=False, sparse=sparse
            )
            layers = []
            for i in range(len(HIDDEN_UNITS)):
                kernel = weights[f"dense{i}/kernel"]
                linear = nn.Linear(kernel.shape[0], kernel.shape[1])
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
                    linear.bias.copy_(torch.from_numpy(weights[f"dense{i}/bias"]))
                layers.append(linear)
                if i < len(HIDDEN_UNITS) - 1:
                    layers.append(nn.ReLU())
            self.mlp = nn.Sequential(*layers)

        def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return self.mlp(torch.cat([self.user(users), self.item(items)], dim=1))

    model = NcfMlp()
    if sparse:
        tables = [model.user.weight, model.item.weight]
        optimizers = [
            torch.optim.SparseAdam(tables, lr=LEARNING_RATE),
            torch.optim.Adam(model.mlp.parameters(), lr=LEARNING_RATE),
        ]
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)]
    loss_fn = nn.BCEWithLogitsLoss()

    def step(batch: Batch) -> float:
        users = torch.from_numpy(batch.users.astype(np.int64))
        items = torch.from_numpy(batch.items.astype(np.int64))
        labels = torch.from_numpy(batch.labels)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(users, items), labels)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        return float(loss.detach())

    return step
