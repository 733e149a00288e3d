"""The x·y game: the smallest two-player game on which gradient descent fails to converge.

Player x minimizes f(x, y) = x·y and player y minimizes -x·y; the only equilibrium is (0, 0).
It is the standard toy for GAN training dynamics (Goodfellow, "NIPS 2016 Tutorial: Generative
Adversarial Networks", exercise 7.2 and solution 8.2, arXiv:1701.00160; Mescheder et al.,
"Which Training Methods for GANs do actually Converge?", ICML 2018, arXiv:1801.04406;
Gidel et al., "Negative Momentum for Improved Game Dynamics", AISTATS 2019, arXiv:1807.04740).

With learning rate lr, both players updating at once from the same point,

    x' = x - lr·y,   y' = y + lr·x,

is a rotation scaled by sqrt(1 + lr²), so the iterates spiral outwards for any lr > 0.
Updating in turn, y seeing the new x,

    x' = x - lr·y,   y' = y + lr·x',

is a map of determinant 1 that conserves x² + y² - lr·x·y: the iterates circle the
equilibrium on a closed ellipse for lr < 2 and never reach it either.

    python -m lightning_dgm.xy_game --steps 200 --output runs/xy_game.png
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from lightning_dgm.errors import ConfigError


def play(x0: float, y0: float, lr: float, steps: int, alternating: bool) -> torch.Tensor:
    """Trajectory of the two players from (x0, y0), shape (steps + 1, 2), float64, start included.

    Each player is a real parameter with its own SGD optimizer and its own loss, the way a GAN's
    generator and discriminator are trained, so this checks the update order and not just algebra.
    """
    x = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    y = torch.nn.Parameter(torch.tensor(y0, dtype=torch.float64))
    opt_x = torch.optim.SGD([x], lr=lr)
    opt_y = torch.optim.SGD([y], lr=lr)

    def loss_x() -> torch.Tensor:
        return x * y

    def loss_y() -> torch.Tensor:
        return -(x * y)

    # torch.autograd.grad differentiates each loss only with respect to its own player, so x never
    # receives the gradient of y's loss (backward() would accumulate into both .grad fields).
    def set_grad(param: torch.nn.Parameter, loss: torch.Tensor) -> None:
        (param.grad,) = torch.autograd.grad(loss, param)

    points = [torch.stack([x.detach().clone(), y.detach().clone()])]
    for _ in range(steps):
        opt_x.zero_grad(set_to_none=True)
        opt_y.zero_grad(set_to_none=True)
        if alternating:
            set_grad(x, loss_x())
            opt_x.step()
            set_grad(y, loss_y())  # evaluated after x moved: y answers the new x
            opt_y.step()
        else:
            # Both gradients at the same point before either player moves.
            set_grad(x, loss_x())
            set_grad(y, loss_y())
            opt_x.step()
            opt_y.step()
        points.append(torch.stack([x.detach().clone(), y.detach().clone()]))
    return torch.stack(points)


def plot(simultaneous: torch.Tensor, alternating: torch.Tensor, lr: float, path: Path) -> None:
    """Both trajectories in the (x, y) plane (left) and their distance to the equilibrium (right)."""
    # Figure without pyplot: no global state and no GUI backend, so this works headless and in tests.
    fig = Figure(figsize=(11, 4.8))
    plane, norms = fig.subplots(1, 2)
    runs = (("simultaneous", simultaneous, "tab:red"), ("alternating", alternating, "tab:blue"))

    for name, traj, color in runs:
        plane.plot(traj[:, 0], traj[:, 1], color=color, lw=1.0, marker=".", ms=2.5, label=name)
        plane.plot(traj[-1, 0], traj[-1, 1], marker="s", color=color, ms=5, ls="none")
    start = simultaneous[0]
    plane.plot(start[0], start[1], marker="o", color="black", ms=7, ls="none", label="start")
    plane.plot(0.0, 0.0, marker="*", color="gold", mec="black", ms=14, ls="none", label="equilibrium (0, 0)")
    plane.set_aspect("equal", adjustable="datalim")
    plane.set_xlabel("x  (minimizes x·y)")
    plane.set_ylabel("y  (maximizes x·y)")
    plane.set_title("trajectories (squares: last iterate)")
    plane.grid(alpha=0.3)
    plane.legend(loc="best", fontsize=8)

    for name, traj, color in runs:
        norms.plot(torch.linalg.vector_norm(traj, dim=1), color=color, label=name)
    norms.axhline(0.0, color="gold", lw=1.5, label="equilibrium")
    norms.set_xlabel("iteration")
    norms.set_ylabel("‖(x, y)‖")
    norms.set_title("distance to the equilibrium")
    norms.grid(alpha=0.3)
    norms.legend(loc="best", fontsize=8)

    fig.suptitle(f"x·y game, gradient descent with lr = {lr:g}: neither update order converges")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(lr: float = 0.1, steps: int = 200, x0: float = 1.0, y0: float = 1.0, output: str = "xy_game.png") -> None:
    """Play the x·y game with simultaneous and with alternating gradient descent and plot both.

    Args:
        lr: learning rate of both players' SGD.
        steps: number of updates of each player.
        x0: starting value of player x (minimizes x·y).
        y0: starting value of player y (maximizes x·y).
        output: where to write the PNG; parent folders are created.
    """
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr}; pass e.g. --lr 0.1")
    if steps < 1:
        raise ConfigError(f"steps must be at least 1, got {steps}; pass e.g. --steps 200")

    simultaneous = play(x0, y0, lr, steps, alternating=False)
    alternating = play(x0, y0, lr, steps, alternating=True)
    path = Path(output)
    plot(simultaneous, alternating, lr, path)

    start = torch.linalg.vector_norm(simultaneous[0]).item()
    sim_end = torch.linalg.vector_norm(simultaneous[-1]).item()
    alt_end = torch.linalg.vector_norm(alternating[-1]).item()
    predicted = (1 + lr**2) ** (steps / 2)

    def ratio(norm: float) -> str:
        # Started at the equilibrium, both methods stay there and there is no growth to report.
        return f"  (x{norm / start:.6f})" if start > 0 else ""

    print(f"x·y game, lr={lr:g}, {steps} steps from ({x0:g}, {y0:g})")
    print(f"  start norm:                {start:.6f}")
    print(f"  simultaneous final norm:   {sim_end:.6f}{ratio(sim_end)}")
    print(f"  predicted growth factor:   (1+lr²)^(steps/2) = {predicted:.6f}")
    print(f"  alternating final norm:    {alt_end:.6f}{ratio(alt_end)}")
    print(f"  wrote {path}")


if __name__ == "__main__":
    from jsonargparse import auto_cli

    try:
        auto_cli(main)
    except ValueError as error:  # bad settings: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
