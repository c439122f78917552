"""Phase 7: each technique against its definition, all switches off equal phase 5 (every attention backend serving
phase 7 is tested with the other phases, in test_models.py)."""

import csv
import itertools
import math

import pytest
import torch
from conftest import TINY, tiny_except, train_composed
from hydra import compose, initialize_config_dir

from gpt.config import CONFIG_DIR, register_configs
from gpt.errors import UserError
from gpt.models import GPT, modern
from gpt.optim import MuonWithAdamW, build_optimizer, build_schedule
from gpt.validation import check_config

V, T, C, H, L = 37, 24, 32, 4, 2
ALL_ON = dict(pos="rope", qk_norm=True, mlp="relu2", zero_init_proj=True, tie_embeddings=False, logit_softcap=15.0,
              value_embeddings=True)  # fmt: skip
# The off position of every switch, as the ablation writes it on the command line
ALL_OFF = ["model.pos=learned", "model.qk_norm=false", "model.mlp=gelu", "model.zero_init_proj=false",
           "model.tie_embeddings=true", "model.logit_softcap=0", "model.value_embeddings=false",
           "optim.algorithm=adamw", "optim.schedule=cosine"]  # fmt: skip


def build(backend: str = "eager", **switches) -> GPT:
    return GPT(vocab_size=V, block_size=T, n_layer=L, n_embd=C, n_head=H, dropout=0.0, backend=backend, **switches)


def test_rotary_embeddings_make_attention_depend_on_relative_position_only():
    """q at position m and k at n meet through a rotation by m - n: shifting both positions changes nothing."""
    torch.manual_seed(0)
    rotary = modern.Rotary(head_dim=8, block_size=40)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    at = lambda x, position: rotary(x.expand(1, 1, 40, 8))[0, 0, position]
    for m, n, shift in [(5, 2, 7), (10, 10, 20), (3, 9, 30)]:
        assert torch.dot(at(q, m), at(k, n)) == pytest.approx(torch.dot(at(q, m + shift), at(k, n + shift)).item())
    assert at(q, 13).norm() == pytest.approx(q.norm().item())  # a rotation: lengths are kept
    assert torch.equal(at(q, 0), q)  # position 0 is not rotated


def test_qk_norm_relu_squared_and_softcap_follow_their_definitions():
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64) * 7
    normed = modern.qk_norm(x)
    torch.testing.assert_close(normed.pow(2).mean(-1), torch.ones(2, 3, 5, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(modern.relu_squared(x), torch.where(x > 0, x * x, torch.zeros_like(x)))
    capped = modern.softcap(x * 100, 15.0)
    assert capped.abs().max() <= 15.0 and modern.softcap(torch.tensor(20.0), 15.0) < 15.0
    small = torch.tensor([0.01, -0.02], dtype=torch.float64)
    torch.testing.assert_close(modern.softcap(small, 15.0), small, rtol=1e-6, atol=0)  # ~identity near 0


def test_every_switch_changes_what_it_names():
    torch.manual_seed(0)
    model = build(**ALL_ON)
    assert model.pos_emb is None and model.head.weight is not model.tok_emb.weight
    assert all(block.attn.proj.weight.abs().sum() == 0 and block.mlp.proj.weight.abs().sum() == 0
               for block in model.body)  # fmt: skip
    assert len(model.value_embeddings.tables) == L and model.body[0].attn.value_mix is not None
    idx = torch.randint(V, (3, T))
    logits, loss = model(idx, torch.randint(V, (3, T)))
    assert logits.abs().max() <= 15.0
    loss.backward()
    # zero-initialised projections still learn (their inputs are not zero); what flows through them does not
    # yet, so the value embeddings' gradient appears once the attention projections have moved
    assert all(block.attn.proj.weight.grad.abs().sum() > 0 for block in model.body)
    assert all(table.weight.grad.abs().sum() == 0 for table in model.value_embeddings.tables)
    moved = build(**{**ALL_ON, "zero_init_proj": False})
    moved(idx, torch.randint(V, (3, T)))[1].backward()
    assert all(table.weight.grad.abs().sum() > 0 for table in moved.value_embeddings.tables)
    plain = build()
    assert plain.pos_emb is not None and plain.head.weight is plain.tok_emb.weight
    assert plain.value_embeddings is None and plain.body[0].attn.value_mix is None


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = build(**ALL_ON)
    optimizer = build_optimizer(model, {"algorithm": "muon", "lr": 1e-3, "beta1": 0.9, "beta2": 0.99,
                                        "weight_decay": 0.1})  # fmt: skip
    assert isinstance(optimizer, MuonWithAdamW)
    muon, adamw = (part.param_groups for part in optimizer.parts)
    hidden = {id(p) for name, p in model.named_parameters() if name.startswith("body.") and p.dim() == 2}
    assert {id(p) for group in muon for p in group["params"]} == hidden
    rest = {id(p) for group in adamw for p in group["params"]}
    assert id(model.tok_emb.weight) in rest and id(model.head.weight) in rest and not rest & hidden
    assert len(rest) + len(hidden) == len(list(model.parameters()))
    # the schedule reaches both parts, and a step moves both
    schedule = build_schedule(optimizer, {"warmup_steps": 2, "schedule": "wsd", "decay_fraction": 0.5,
                                          "lr": 1e-3, "min_lr_ratio": 0.1}, max_steps=10)  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randint(V, (2, T)), torch.randint(V, (2, T)))[1].backward()
    optimizer.step()
    schedule.step()
    assert muon[0]["lr"] == adamw[0]["lr"]
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    assert sum(moved) >= len(hidden) + 2


def test_muons_update_is_orthogonalised_and_sized_like_adamws():
    """One step from rest, with an ill-conditioned gradient (singular values 1 to 10) on a hidden matrix and a random
    one elsewhere: Muon's update has all its singular values near 1 (Newton-Schulz), and its RMS is 0.2 lr, what
    AdamW's update RMS is scaled to (match_rms_adamw; AdamW's first step moves every weight by lr)."""
    torch.manual_seed(0)
    # wide enough that the scale matters: 0.2 sqrt(width) is near 1 at the tests' usual width of 32
    model, lr = GPT(vocab_size=V, block_size=T, n_layer=1, n_embd=128, n_head=4, dropout=0.0, backend="eager"), 1e-2
    optimizer = build_optimizer(model, {"algorithm": "muon", "lr": lr, "beta1": 0.9, "beta2": 0.99,
                                        "weight_decay": 0.0})  # fmt: skip
    hidden = next(p for name, p in model.named_parameters() if name.startswith("body.") and p.dim() == 2)
    rows, cols = hidden.shape
    u, _ = torch.linalg.qr(torch.randn(rows, rows))
    w, _ = torch.linalg.qr(torch.randn(cols, cols))
    singular = torch.linspace(1, 10, min(rows, cols))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    hidden.grad = u[:, : len(singular)] @ torch.diag(singular) @ w[:, : len(singular)].T
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    update = hidden.detach() - before[[id(p) for p in model.parameters()].index(id(hidden))]
    sv = torch.linalg.svdvals(update.double()) / (0.2 * lr * max(rows, cols) ** 0.5)
    assert sv.min() > 0.6 and sv.max() < 1.25, sv  # the gradient's spread of 10x is gone
    assert update.pow(2).mean().sqrt() == pytest.approx(0.2 * lr, rel=0.25)
    adamw_moves = [(p.detach() - b).abs() for p, b in zip(model.parameters(), before, strict=True) if p.dim() < 2]
    assert all(torch.allclose(move, torch.full_like(move, lr), rtol=1e-3) for move in adamw_moves)


def schedule_rates(schedule: str, decay_fraction: float) -> list[float]:
    """The learning rate before each of 20 steps and after the last: peak 1, 4 warmup steps, floor 0.1."""
    opt = {"algorithm": "adamw", "lr": 1.0, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0,
           "warmup_steps": 4, "schedule": schedule, "decay_fraction": decay_fraction, "min_lr_ratio": 0.1}  # fmt: skip
    optimizer = build_optimizer(build(), opt)
    steps = build_schedule(optimizer, opt, max_steps=20)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        steps.step()
    return [*rates, optimizer.param_groups[0]["lr"]]


def test_the_wsd_schedule_warms_up_holds_then_decays_linearly():
    rates = schedule_rates("wsd", decay_fraction=0.5)
    assert rates[0] == pytest.approx(1 / 5) and rates[4] == pytest.approx(1.0)  # linear warmup
    assert rates[4:11] == pytest.approx([1.0] * 7)  # stable until the last half
    assert rates[20] == pytest.approx(0.1)  # decayed to lr * min_lr_ratio at the last step
    decay = [b - a for a, b in itertools.pairwise(rates[10:])]
    assert decay == pytest.approx([decay[0]] * 10) and decay[0] < 0  # linearly


def test_the_cosine_schedule_warms_up_then_follows_half_a_cosine_to_its_floor():
    rates = schedule_rates("cosine", decay_fraction=0.25)  # (wsd's fraction, which cosine ignores)
    assert rates[:5] == pytest.approx([1 / 5, 2 / 5, 3 / 5, 4 / 5, 1.0])  # linear warmup to the peak
    cosine = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 16)) / 2 for t in range(17)]  # 16 steps from peak to floor
    assert rates[4:] == pytest.approx(cosine)


def train_losses(run_dir) -> list[float]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [float(row["train/loss"]) for row in rows if row.get("train/loss")]


def test_phase_7_with_every_switch_off_trains_exactly_as_phase_5(tmp_path, war_and_peace):
    common = [*TINY, "model.n_layer=2", "model.n_embd=32", "model.n_head=2", "trainer.log_every_n_steps=1",
              "trainer.precision=32"]  # fmt: skip
    env = {"GPT_DATA": str(war_and_peace)}
    phase5 = train_composed("model=gpt", *common, run_dir=tmp_path / "gpt", env=env)
    phase7 = train_composed("model=modern", *common, *ALL_OFF, run_dir=tmp_path / "off", env=env)
    assert phase7["params"] == phase5["params"]
    assert train_losses(tmp_path / "off") == train_losses(tmp_path / "gpt")  # bit for bit
    assert phase7["val_loss"] == phase5["val_loss"]


def test_phase_7_trains_with_every_switch_on(tmp_path, war_and_peace):
    tiny = tiny_except("trainer.max_steps")
    overrides = ["model=modern", "+ablation=all_on", *tiny, "trainer.max_steps=6", "trainer.log_every_n_steps=1"]
    summary = train_composed(*overrides, run_dir=tmp_path, env={"GPT_DATA": str(war_and_peace)})
    losses = train_losses(tmp_path)
    assert summary["phase"] == "modern" and len(losses) == 6 and all(map(math.isfinite, losses))
    assert losses[-1] < losses[0]
    assert summary["val_loss"] < math.log(111)


def test_rope_with_an_odd_head_size_is_refused():
    register_configs()
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", ["model=modern", "model.n_embd=12", "model.n_head=4"])
    with pytest.raises(UserError, match=r"model\.pos=rope .* even head size; n_embd / n_head = 3"):
        check_config(cfg)
