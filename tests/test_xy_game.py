"""The x·y game command: autograd/SGD trajectories against closed forms, the plot and the CLI."""

from __future__ import annotations

import math
import subprocess

import pytest
import torch

from lightning_dgm.xy_game import main, play
from tests.helpers import PYTHON, subprocess_env

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def closed_form(x: float, y: float, lr: float, steps: int, alternating: bool) -> torch.Tensor:
    points = [(x, y)]
    for _ in range(steps):
        x_new = x - lr * y
        y = y + lr * (x_new if alternating else x)
        x = x_new
        points.append((x, y))
    return torch.tensor(points, dtype=torch.float64)


@pytest.mark.parametrize("lr", [0.1, 0.3])
def test_simultaneous_matches_closed_form_and_spirals_out(lr):
    traj = play(1.0, 1.0, lr, 100, alternating=False)
    assert traj.dtype == torch.float64 and traj.shape == (101, 2)
    torch.testing.assert_close(traj, closed_form(1.0, 1.0, lr, 100, alternating=False))
    norms = torch.linalg.vector_norm(traj, dim=1)
    t = torch.arange(101, dtype=torch.float64)
    torch.testing.assert_close(norms, norms[0] * (1 + lr**2) ** (t / 2))


@pytest.mark.parametrize("lr", [0.1, 0.3])
def test_alternating_matches_closed_form_and_conserves_its_quadratic_form(lr):
    traj = play(0.7, -1.2, lr, 300, alternating=True)
    torch.testing.assert_close(traj, closed_form(0.7, -1.2, lr, 300, alternating=True))
    x, y = traj[:, 0], traj[:, 1]
    q = x**2 + y**2 - lr * x * y
    torch.testing.assert_close(q, torch.full_like(q, q[0].item()))


def test_alternating_stays_bounded_while_simultaneous_grows():
    lr, steps = 0.1, 1000
    alt = play(1.0, 1.0, lr, steps, alternating=True)
    sim = play(1.0, 1.0, lr, steps, alternating=False)
    start = math.sqrt(2.0)
    assert torch.linalg.vector_norm(alt, dim=1).max().item() < 1.5 * start
    # It does not drift towards the equilibrium either: the orbit is closed.
    assert torch.linalg.vector_norm(alt, dim=1).min().item() > 0.5 * start
    sim_end = torch.linalg.vector_norm(sim[-1]).item()
    predicted = (1 + lr**2) ** (steps / 2)  # about 145
    assert sim_end == pytest.approx(start * predicted, rel=1e-9)
    assert sim_end > 100 * start


def test_both_start_from_the_same_point():
    sim = play(2.0, -0.5, 0.1, 5, alternating=False)
    alt = play(2.0, -0.5, 0.1, 5, alternating=True)
    expected = torch.tensor([2.0, -0.5], dtype=torch.float64)
    torch.testing.assert_close(sim[0], expected)
    torch.testing.assert_close(alt[0], expected)
    # One step already differs: y sees the old x in one and the new x in the other.
    assert sim[1, 0] == alt[1, 0] and sim[1, 1] != alt[1, 1]


def test_main_writes_png_and_prints_summary(tmp_path, capsys):
    out = tmp_path / "nested" / "xy.png"
    main(steps=50, output=str(out))
    data = out.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)
    printed = capsys.readouterr().out
    predicted = (1 + 0.1**2) ** 25
    assert "start norm:" in printed and f"{math.sqrt(2):.6f}" in printed
    assert f"{math.sqrt(2) * predicted:.6f}" in printed  # simultaneous final norm
    assert f"{predicted:.6f}" in printed
    assert "alternating final norm:" in printed
    assert str(out) in printed


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"lr": -0.1}, {"steps": 0}])
def test_main_rejects_bad_arguments(tmp_path, kwargs):
    out = tmp_path / "xy.png"
    with pytest.raises(ValueError, match="pass e.g."):
        main(output=str(out), **kwargs)
    assert not out.exists()


def test_runs_as_a_command(tmp_path):
    out = tmp_path / "cli" / "xy.png"
    result = subprocess.run(
        [PYTHON, "-m", "lightning_dgm.xy_game", "--steps", "20", "--output", str(out)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert "simultaneous final norm" in result.stdout
