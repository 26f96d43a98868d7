"""Held-out evaluation of an agent run: the model plays each held-out task in the contained environment,
turn by turn, the way TRL's tool loop plays a rollout in training, and the episodes are scored with the
run's rubric.

    completions = play_episodes(model, tokenizer, envs, rows, max_turns=8, max_completion_length=256, ...)

The loop mirrors `GRPOTrainer._tool_call_loop`: the prompt (with the tool schemas the chat template
renders) is generated from; an assistant message is parsed with TRL's `parse_response` (the tokenizer's
response template); its tool calls run in order, each result (or `{'error': ...}` when the tool raised)
becomes a `tool` message; the model generates again, up to `max_turns` tool-calling rounds and
`max_completion_length` tokens in all (tool results count, as in TRL). Sampling is seeded and plain
(temperature, top_p, no top-k), like the single-turn evaluation; `temperature=0` decodes greedily.

`evaluate_agent` is `RunSession.evaluate` for a run with an [environment].
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.envs.metrics import agent_metrics, success_by_tier
from engine.envs.trajectory import Trajectory

if TYPE_CHECKING:
    from engine.session import RunSession


def tool_methods(env: Any) -> list[Callable[..., Any]]:
    """The environment's tools as TRL lists them: public functions of the class but reset and get_reward."""
    return [
        getattr(env, name)
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def _call_tool(tools: dict[str, Callable[..., Any]], call: dict[str, Any]) -> tuple[str, Any]:
    """(name, result) for one parsed tool call, as TRL's loop computes them."""
    if call.get("type") != "function":
        return call.get("name", "unknown"), {"error": f"Unsupported tool call type: {call.get('type')}"}
    function = call["function"]
    name = function["name"]
    try:
        if name not in tools:
            raise ValueError(f"Tool {name} not found.")
        return name, tools[name](**function["arguments"])
    except Exception as exc:  # a tool error is the model's to read, as in TRL
        return name, {"error": str(exc)}


def play_episodes(
    model: Any,
    tokenizer: Any,
    envs: list[Any],
    rows: list[dict[str, Any]],
    max_turns: int,
    max_completion_length: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
) -> list[list[dict[str, Any]]]:
    """Play one episode per row, env i for row i; returns each episode's completion messages (assistant
    and tool messages after the prompt, TRL's completion layout). The environments keep their end state."""
    import torch
    from trl.chat_template_utils import parse_response

    prompts: list[list[dict[str, Any]]] = []
    tools: list[list[Any]] = []
    for env, row in zip(envs, rows, strict=True):
        prompt = copy.deepcopy(row["prompt"])
        task = env.reset(**row)
        if task is not None:  # TRL appends reset's text to the last user message
            prompt[-1]["content"] = f"{prompt[-1]['content']}{task}"
        prompts.append(prompt)
        tools.append(tool_methods(env))
    completions: list[list[dict[str, Any]]] = [[] for _ in rows]
    prompt_lengths = [len(_render(tokenizer, p, t)) for p, t in zip(prompts, tools, strict=True)]
    active = list(range(len(rows)))
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        for round_ in range(max_turns + 1):
            contexts = {i: _render(tokenizer, prompts[i] + completions[i], tools[i]) for i in active}
            budgets = {i: max_completion_length - (len(contexts[i]) - prompt_lengths[i]) for i in active}
            active = [i for i in active if budgets[i] > 0]
            if not active:
                break
            still = []
            for start in range(0, len(active), batch_size):
                chunk = active[start : start + batch_size]
                generated = _generate(
                    model,
                    [contexts[i] for i in chunk],
                    max(budgets[i] for i in chunk),
                    pad_id,
                    tokenizer.eos_token_id,
                    temperature,
                    top_p,
                    device,
                )
                for i, ids in zip(chunk, generated, strict=True):
                    ids = ids[: budgets[i]]
                    message = parse_response(tokenizer, ids, prefix=contexts[i], tools=list(tools[i]))
                    completions[i].append(message)
                    calls = message.get("tool_calls")
                    if not calls or round_ == max_turns:
                        continue
                    by_name = {t.__name__: t for t in tools[i]}
                    for call in calls:
                        name, result = _call_tool(by_name, call)
                        content = result if isinstance(result, list) else str(result)
                        completions[i].append({"role": "tool", "name": name, "content": content})
                    still.append(i)
            active = still
    if was_training:
        model.train()
    return completions


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: list[Callable[..., Any]]) -> list[int]:
    return list(
        tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
    )


def _generate(
    model: Any,
    contexts: list[list[int]],
    max_new_tokens: int,
    pad_id: int,
    eos_id: int,
    temperature: float,
    top_p: float,
    device: Any,
) -> list[list[int]]:
    import torch

    width = max(len(c) for c in contexts)
    input_ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(contexts), width), dtype=torch.long)
    for row, ids in enumerate(contexts):  # left padding: generation continues from the right edge
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    how: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
        if temperature > 0
        else {"do_sample": False}
    )
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        max_new_tokens=max_new_tokens,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        **how,
    )
    result = []
    for seq in out[:, width:].tolist():
        if eos_id in seq:
            seq = seq[: seq.index(eos_id) + 1]
        else:
            while seq and seq[-1] == pad_id and pad_id != eos_id:
                seq.pop()
        result.append(seq)
    return result


# ---- the held-out evaluation of an agent run --------------------------------------------------------


def evaluate_agent(session: RunSession, model: Any, tokenizer: Any, step: int) -> dict[str, float | None]:
    """Play every held-out task [eval] eval_samples times in the run's environment, score the episodes with
    the rubric, record eval/<criterion>/mean, eval/success/<tier> and eval/agent/* over all the episodes
    (see engine/envs/metrics.py), and store each episode's trajectory with its sample."""
    from engine import control
    from engine.data import prompt_text
    from engine.envs.training import environment_factory, episode_columns
    from engine.envs.trajectory import transcript
    from engine.session import ROW_INDEX, mean_std

    cfg = session.cfg
    assert cfg.environment is not None
    control.emit(
        "progress",
        run_id=session.run_id,
        step=step,
        max_steps=cfg.training.max_steps,
        steps_per_s=None,
        eta_s=None,
        phase="eval",
    )
    t0 = time.perf_counter()
    n = cfg.eval.eval_samples  # episodes per task: success is then a mean over n tries, not one coin flip
    rows = [row for row in session.eval_rows for _ in range(n)]
    factory = environment_factory(cfg)
    assert factory is not None
    try:
        envs = [factory() for _ in rows]
        episode_rows = [{k: v for k, v in row.items() if k != ROW_INDEX} for row in rows]
        completions = play_episodes(
            model,
            tokenizer,
            envs,
            episode_rows,
            max_turns=cfg.environment.max_turns,
            max_completion_length=cfg.training.max_completion_length,
            temperature=cfg.training.temperature,
            top_p=cfg.training.top_p,
            seed=cfg.training.seed + 7919 * (step + 1),
        )
        episodes = episode_columns(envs, completions, cfg.environment.max_turns)
    finally:
        factory.close()
    prompts = [r["prompt"] for r in rows]
    columns: dict[str, list[Any]] = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    columns.update(episodes)
    ids: list[list[int]] = [
        [] for _ in rows
    ]  # the rubric's token-based criteria see no ids for a multi-turn episode
    scored = session.score(prompts, completions, columns, ids, step)
    trajectories: list[Trajectory] = episodes["trajectories"]
    summary: dict[str, float | None] = {}
    for name, values in scored.scores.items():
        summary[f"eval/{name}/mean"] = mean_std(values)[0]
    summary["eval/reward/mean"] = mean_std(list(scored.totals))[0]
    tiers = [r.get("tier") for r in rows]
    summary.update({f"eval/{k}": v for k, v in success_by_tier(trajectories, tiers).items()})
    summary.update({f"eval/{k}": v for k, v in agent_metrics(trajectories).items()})
    samples = []
    for i, row in enumerate(rows):
        total, scores, errors = scored.row(i)
        samples.append(
            {
                "prompt_index": row.get(ROW_INDEX, i // n),
                "prompt": prompt_text(row["prompt"]),
                "completion": transcript(trajectories[i]),
                "reward": total,
                "scores": scores,
                "errors": errors,
                "trajectory": trajectories[i].as_dict(),
            }
        )
    session.flush()
    session.workspace.write_evaluation(session.run_id, step, samples, summary)
    control.emit("eval_written", run_id=session.run_id, step=step, reward=summary["eval/reward/mean"])
    shown = {k: v for k, v in summary.items() if k.endswith("/mean") or k.startswith("eval/success/")}
    pretty = ", ".join(f"{k.removeprefix('eval/')}={v:.3f}" for k, v in shown.items() if v is not None)
    session.log(
        f"agent eval at step {step} on {len(session.eval_rows)} tasks x {n} episodes "
        f"({time.perf_counter() - t0:.1f}s): {pretty}"
    )
    return summary
