"""PPO's arithmetic against numbers worked out by hand, and its three roles on the tiny demo model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import requires_demo

from engine.algos import ppo
from engine.contract.config import config_from_dict
from engine.contract.paths import DEMO_DIR


def close(a: torch.Tensor, b: list[list[float]] | list[float], tol: float = 1e-6) -> bool:
    return torch.allclose(a, torch.tensor(b), atol=tol)


def test_gae_on_a_small_sequence_and_a_padded_one() -> None:
    # gamma 0.9, lam 0.5. Row 0, three tokens, reward 1 at the end, values .5 .6 .7:
    #   t2: delta = 1 - .7 = .3                    A2 = .3
    #   t1: delta = 0 + .9*.7 - .6 = .03           A1 = .03 + .45*.3 = .165
    #   t0: delta = 0 + .9*.6 - .5 = .04           A0 = .04 + .45*.165 = .11425
    # Row 1, two tokens then padding (whose reward 9 and value 7 must be ignored):
    #   t1: delta = 2 + .9*0 - .5 = 1.5 (terminal) A1 = 1.5
    #   t0: delta = 0 + .9*.5 - 1 = -.55           A0 = -.55 + .45*1.5 = .125
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [1.0, 0.5, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    assert close(advantages, [[0.11425, 0.165, 0.3], [0.125, 1.5, 0.0]])
    assert close(returns, [[0.61425, 0.765, 1.0], [1.125, 2.0, 0.0]])


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value() -> None:
    rewards = torch.tensor([[-0.1, -0.1, 1.0]])
    values = torch.tensor([[0.2, 0.4, 0.6]])
    advantages, returns = ppo.gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert close(returns, [[0.8, 0.9, 1.0]])
    assert close(advantages, [[0.6, 0.5, 0.4]])


def test_whitening_uses_only_masked_entries() -> None:
    # masked entries 1, 2, 3: mean 2, unbiased variance ((1 + 0 + 1) / 2) = 1; the 100 is padding
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert close(ppo.masked_whiten(x, mask), [[-1.0, 0.0, 1.0, 0.0]], tol=1e-5)
    assert ppo.masked_mean(x, mask).item() == pytest.approx(2.0)


def test_adaptive_kl_controller_moves_toward_its_target_by_at_most_20_percent() -> None:
    # error = clip(kl / target - 1, -0.2, 0.2); coef *= 1 + error * completions / horizon
    over = ppo.KLController(0.1, target=6.0, horizon=10000)
    over.update(9.0, completions=64)  # 9/6 - 1 = 0.5, clipped to 0.2
    assert over.value == pytest.approx(0.1 * (1 + 0.2 * 64 / 10000))
    under = ppo.KLController(0.1, target=6.0, horizon=10000)
    under.update(3.0, completions=64)  # -0.5, clipped to -0.2
    assert under.value == pytest.approx(0.1 * (1 - 0.2 * 64 / 10000))
    near = ppo.KLController(0.1, target=6.0, horizon=100)
    near.update(6.6, completions=50)  # 0.1, inside the clip
    assert near.value == pytest.approx(0.1 * 1.05)
    fixed = ppo.KLController(0.1, target=0.0)
    fixed.update(100.0, completions=64)
    assert fixed.value == 0.1


def test_kl_estimators() -> None:
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert ppo.kl_per_token(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert ppo.kl_per_token(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + math.log(2))
    assert ppo.kl_per_token(ref, ref, "k3").item() == 0.0


def test_value_clipping_takes_the_larger_error() -> None:
    # old .5, cliprange .2, return 2:
    #   value 1.0 -> clipped .7: errors 1 and 1.69 -> 1.69 (clipped bit)
    #   value 0.6 -> within range: both 1.96
    #   value 2.0 -> clipped .7: errors 0 and 1.69 -> 1.69 (clipped bit: no credit for jumping to the target)
    #   padding (value 9) ignored
    values = torch.tensor([[1.0, 0.6, 2.0, 9.0]])
    old = torch.full((1, 4), 0.5)
    returns = torch.full((1, 4), 2.0)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, clipped = ppo.clipped_value_loss(values, old, returns, mask, cliprange=0.2)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 1.96 + 1.69) / 3)
    assert clipped.item() == pytest.approx(2 / 3)


def test_tokens_put_prompts_left_and_completions_right() -> None:
    tokens = ppo.make_tokens([[5, 6], [7]], [[1], [2, 3, 0]], pad_id=0)
    assert tokens.input_ids.tolist() == [[5, 6, 1, 0, 0], [0, 7, 2, 3, 0]]
    assert tokens.attention_mask.tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]]
    assert tokens.mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert tokens.completion_ids.tolist() == [[1, 0, 0], [2, 3, 0]]


def test_each_pass_over_the_data_visits_every_row_once() -> None:
    rows = [{"i": i} for i in range(10)]
    first_pass = [r["i"] for s in range(1, 6) for r in ppo.step_rows(rows, s, 2, seed=3)]
    assert sorted(first_pass) == list(range(10))
    assert ppo.step_rows(rows, 4, 2, seed=3) == ppo.step_rows(
        rows, 4, 2, seed=3
    )  # a function of (seed, step)


# ---- the three roles on the tiny demo model ------------------------------------------------------------
def demo_session() -> SimpleNamespace:
    cfg = config_from_dict(
        {
            "algorithm": "ppo",
            "model": {"path": str(DEMO_DIR / "model")},
            "data": {"train": str(DEMO_DIR / "data" / "train.jsonl")},
            "rubric": {"path": str(DEMO_DIR / "rubric.toml")},
            "lora": {"r": 4, "alpha": 8},
            "training": {"seed": 1, "num_generations": 2},
        }
    )
    return SimpleNamespace(cfg=cfg)


@requires_demo
def test_policy_equals_reference_and_values_are_zero_before_the_first_update() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(DEMO_DIR / "model")
    base = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model")
    model, head = ppo.build_model(demo_session(), base)  # type: ignore[arg-type]
    prompts = [tokenizer("7+5=")["input_ids"], tokenizer("13-4=")["input_ids"]]
    completions = [tokenizer("<answer>12</answer>")["input_ids"], tokenizer("9")["input_ids"]]
    tokens = ppo.make_tokens(prompts, completions, pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        policy, entropy = ppo.policy_logprobs(model, tokens, temperature=1.0)
        reference = ppo.reference_logprobs(model, tokens, temperature=1.0)
        values = ppo.state_values(model, head, tokens)
    assert torch.equal(policy, reference)
    assert (policy <= 0).all() and (entropy > 0).all()
    assert torch.equal(values, torch.zeros_like(values))
    # The adapters are what they claim: the value adapter never enters the policy's pass, and a change
    # of the policy's adapter shows in the policy only, not in the reference.
    lora_b = {
        name: p
        for name, p in model.named_parameters()
        if "lora_B" in name and "q_proj" in name and ".0." in name
    }
    with torch.no_grad():
        next(p for n, p in lora_b.items() if n.endswith(f"{ppo.VALUE}.weight")).fill_(0.5)
        assert torch.equal(ppo.policy_logprobs(model, tokens, 1.0)[0], policy)
        next(p for n, p in lora_b.items() if n.endswith(f"{ppo.POLICY}.weight")).fill_(0.5)
        assert not torch.allclose(ppo.policy_logprobs(model, tokens, 1.0)[0], policy)
        assert torch.equal(ppo.reference_logprobs(model, tokens, 1.0), reference)
    # both adapters and the head train; the base does not
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-2] for n in trainable} == {ppo.POLICY, ppo.VALUE}


@requires_demo
def test_the_value_pass_trains_the_value_adapter_and_head() -> None:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    base = AutoModelForCausalLM.from_pretrained(DEMO_DIR / "model")
    model, head = ppo.build_model(demo_session(), base)  # type: ignore[arg-type]
    tokens = ppo.make_tokens([[5, 6, 7]], [[8, 9, 10]], pad_id=0)
    with torch.no_grad():
        head.weight.fill_(0.1)  # from zero, only the head itself would get a gradient
    ppo.state_values(model, head, tokens).sum().backward()
    grads = {n.split(".")[-2] for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
    assert grads == {ppo.VALUE} and head.weight.grad is not None and head.weight.grad.any()
