"""SlicedAdam: torch's Adam bitwise, on tensors updated slice by slice and on the rest."""
import pytest
import torch

from largegraph.training.optim import SlicedAdam


class SmallSlices(SlicedAdam):
    SLICE = 1000  # several slices and a short last one on a small tensor
    MIN_NUMEL = 5000


@pytest.mark.parametrize("weight_decay", [0.0, 5e-4])
def test_sliced_adam_is_bitwise_torch_adam_and_shares_its_state(weight_decay):
    torch.manual_seed(0)
    start = [torch.randn(300, 40), torch.randn(10, 3)]  # sliced, and left to Adam's own step
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    opt_ours = SmallSlices(ours, lr=0.01, weight_decay=weight_decay)
    opt_theirs = torch.optim.Adam(theirs, lr=0.01, weight_decay=weight_decay)
    for _ in range(3):
        grads = [torch.randn_like(t) for t in start]
        grads[0][::3] = 0  # rows a batch did not touch
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert all(p.grad is not None for p in ours)
    mine, torch_state = opt_ours.state_dict()["state"], opt_theirs.state_dict()["state"]
    assert mine.keys() == torch_state.keys()
    for i in mine:
        assert all(torch.equal(mine[i][k], torch_state[i][k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    resumed = SmallSlices(theirs, lr=0.01, weight_decay=weight_decay)
    resumed.load_state_dict(opt_theirs.state_dict())  # a checkpoint of either loads into the other
    assert torch.equal(resumed.state[theirs[0]]["exp_avg"], opt_ours.state[ours[0]]["exp_avg"])
