"""verifiers style: per-sample functions that name what they use, and a group function."""

import asyncio


def correct_answer_reward_func(completion, answer, **kwargs) -> float:
    response = completion[-1]["content"] if isinstance(completion, list) else completion
    return 1.0 if answer in response else 0.0


def parsed_answer(parser, completion, answer) -> float:
    return float(parser.parse_answer(completion).strip() == answer)


def echo_penalty(prompt, completion) -> float:
    return -1.0 if completion and completion in prompt else 0.0


async def async_length(completion, state) -> float:
    await asyncio.sleep(0)
    state["seen"] = True
    return float(len(completion))


def diversity(completions, answers, **kwargs) -> list[float]:
    distinct = len(set(completions))
    return [distinct / len(completions)] * len(completions)


def task_and_info(completion, task, info) -> int:
    return 1 if task == "default" and info == {} else 0
