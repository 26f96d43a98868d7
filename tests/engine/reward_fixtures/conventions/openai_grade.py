"""OpenAI RFT python graders: grade(sample, item) -> float."""

from typing import Any


def grade(sample: dict[str, Any], item: dict[str, Any]) -> float:
    output_text = sample["output_text"]
    reference = item["answer"]
    return 1.0 if output_text.strip() == reference else 0.0


def grade_json(sample, item):
    data = sample["output_json"] or {}
    return float(isinstance(data, dict) and data.get("answer") == item["answer"])
