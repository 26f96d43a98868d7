"""open-r1 style reward functions: conversational completions, dataset columns by name."""

import re


def accuracy_reward(completions, solution, **kwargs):
    """1.0 when the last number matches the gold one; None when the gold solution has no number."""
    contents = [completion[0]["content"] for completion in completions]
    rewards = []
    for content, sol in zip(contents, solution, strict=True):
        gold = re.findall(r"-?\d+", sol)
        if not gold:
            rewards.append(None)
            continue
        predicted = re.findall(r"-?\d+", content)
        rewards.append(1.0 if predicted and predicted[-1] == gold[-1] else 0.0)
    return rewards


def format_reward(completions, **kwargs):
    pattern = r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, content, re.DOTALL | re.MULTILINE) for content in completion_contents]
    return [1.0 if match else 0.0 for match in matches]


def tag_count_reward(completions, **kwargs):
    def count_tags(text: str) -> float:
        count = 0.0
        if text.count("<think>\n") == 1:
            count += 0.25
        if text.count("\n</think>\n") == 1:
            count += 0.25
        if text.count("\n<answer>\n") == 1:
            count += 0.25
        if text.count("\n</answer>") == 1:
            count += 0.25
        return count

    contents = [completion[0]["content"] for completion in completions]
    return [count_tags(c) for c in contents]


def reasoning_steps_reward(completions, **kwargs):
    pattern = r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)"
    completion_contents = [completion[0]["content"] for completion in completions]
    matches = [len(re.findall(pattern, content)) for content in completion_contents]
    return [min(1.0, count / 3) for count in matches]


def get_repetition_penalty_reward(ngram_size: int, max_penalty: float):
    def zipngram(text: str, ngram_size: int):
        words = text.lower().split()
        return zip(*[words[i:] for i in range(ngram_size)], strict=False)

    def repetition_penalty_reward(completions, **kwargs) -> list[float]:
        contents = [completion[0]["content"] for completion in completions]
        rewards = []
        for completion in contents:
            if completion == "" or len(completion.split()) < ngram_size:
                rewards.append(0.0)
                continue
            ngrams = set()
            total = 0
            for ng in zipngram(completion, ngram_size):
                ngrams.add(ng)
                total += 1
            scaling = 1 - len(ngrams) / total
            rewards.append(scaling * max_penalty)
        return rewards

    return repetition_penalty_reward


repetition_penalty = get_repetition_penalty_reward(ngram_size=2, max_penalty=-1.0)


def get_soft_overlong_punishment(max_completion_len, soft_punish_cache):
    def soft_overlong_punishment_reward(completion_ids, **kwargs) -> list[float]:
        rewards = []
        for ids in completion_ids:
            completion_length = len(ids)
            if completion_length <= max_completion_len - soft_punish_cache:
                rewards.append(0.0)
            elif max_completion_len - soft_punish_cache < completion_length <= max_completion_len:
                rewards.append(
                    (max_completion_len - soft_punish_cache - completion_length) / soft_punish_cache
                )
            else:
                rewards.append(-1.0)
        return rewards

    return soft_overlong_punishment_reward


soft_overlong = get_soft_overlong_punishment(max_completion_len=8, soft_punish_cache=4)
