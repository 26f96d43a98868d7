"""The launcher's Advanced section (TRL GRPO knobs, prompt rendering, PPO) and its memory estimate/warning."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpers import write_config

from engine.contract.memory import estimate_for_run, read_model_config
from engine.contract.paths import DEMO_DIR
from studio.state.config_form import form_fields
from studio.state.memory_check import DeviceMemory, detect_gpu, detect_ram
from studio.widgets.launcher import Launcher

TRL_KNOBS = (
    "loss_type",
    "scale_rewards",
    "num_iterations",
    "importance_sampling_level",
    "mask_truncated_completions",
    "top_k",
    "min_p",
    "repetition_penalty",
    "max_prompt_length",
    "gradient_accumulation_steps",
    "generation_batch_size",
    "entropy_coef",
    "top_entropy_quantile",
)


def _launcher(qtbot, state) -> Launcher:  # type: ignore[no-untyped-def]
    launcher = Launcher(state)
    qtbot.addWidget(launcher)
    launcher.resize(1300, 900)
    launcher.show()
    return launcher


def test_the_grouping_rule_puts_trl_knobs_prompt_rendering_and_ppo_under_advanced() -> None:
    advanced = {s.key for s in form_fields() if s.advanced}
    assert {f"training.{k}" for k in TRL_KNOBS} <= advanced
    assert {"data.chat_template", "data.system_prompt", "data.chat_template_kwargs"} <= advanced
    assert {s.key for s in form_fields() if s.help.startswith("PPO:")} <= advanced
    basics = {
        "training.max_steps",
        "training.learning_rate",
        "training.num_generations",
        "lora.r",
        "model.path",
    }
    assert not basics & advanced
    assert "data.sampling" not in advanced and "training.gradient_checkpointing" not in advanced


def test_advanced_section_folds_edits_and_validates(qtbot, state, tmp_path: Path) -> None:
    launcher = _launcher(qtbot, state)
    assert launcher.load_path(write_config(tmp_path))
    loss_type = launcher.editors["training.loss_type"]
    assert launcher.advanced_body.isAncestorOf(loss_type)
    assert not launcher.advanced_body.isAncestorOf(launcher.editors["training.max_steps"])
    assert not loss_type.isVisible() and "changed" not in launcher.advanced_toggle.text()
    launcher.advanced_toggle.click()
    assert loss_type.isVisible()

    loss_type.setCurrentText("dr_grpo")  # type: ignore[attr-defined]
    launcher.editors["data.chat_template"].setCurrentText("never")  # type: ignore[attr-defined]
    launcher._line_edit(launcher.editors["data.chat_template_kwargs"]).setText("{ enable_thinking = false }")
    assert "3 changed" in launcher.advanced_toggle.text()
    cfg = launcher.validate()
    assert cfg is not None, launcher.message.text()
    assert cfg.training.loss_type == "dr_grpo" and cfg.data.chat_template == "never"
    assert cfg.data.chat_template_kwargs == {"enable_thinking": False}
    # What the form writes reads back into the same form.
    saved = tmp_path / "saved.toml"
    launcher.save_path(cfg, saved)
    other = _launcher(qtbot, state)
    assert other.load_path(saved)
    assert (
        other._line_edit(other.editors["data.chat_template_kwargs"]).text() == "{ enable_thinking = false }"
    )
    assert other.validate() is not None

    launcher._line_edit(launcher.editors["data.chat_template_kwargs"]).setText("{ enable_thinking = ")
    assert launcher.validate() is None and "chat_template_kwargs" in launcher.message.text()
    # The algorithm is a choice of grpo and ppo; PPO's keys are there, shown only when PPO is chosen.
    assert launcher.editors["algorithm"].findText("ppo") >= 0  # type: ignore[attr-defined]
    assert launcher.advanced_body.isAncestorOf(launcher.editors["training.vf_coef"])
    assert launcher.ppo_box.isAncestorOf(launcher.editors["training.vf_coef"])
    assert launcher.ppo_box.isHidden()
    launcher.editors["algorithm"].setCurrentText("ppo")  # type: ignore[attr-defined]
    assert not launcher.ppo_box.isHidden()
    launcher.advanced_toggle.setChecked(True)
    assert launcher.editors["training.vf_coef"].isVisible()
    launcher.editors["algorithm"].setCurrentText("grpo")  # type: ignore[attr-defined]
    assert launcher.ppo_box.isHidden()


def test_memory_estimate_and_the_warning_when_it_will_not_fit(qtbot, state, tmp_path: Path) -> None:
    launcher = _launcher(qtbot, state)
    assert launcher.load_path(write_config(tmp_path))
    launcher.devices = (None, DeviceMemory("ram", "system RAM", 64.0))  # a CPU machine with 64 GB
    cfg = launcher.validate()
    assert cfg is not None
    expected = estimate_for_run(read_model_config(DEMO_DIR / "model"), cfg, "float32")
    check = launcher.memory_check
    assert check is not None and check.estimate == expected and check.fits
    assert "parameters" in launcher.memory.text() and "system RAM" in launcher.memory.text()
    assert not launcher.memory_warning.isVisible()

    # The same run on a GPU that is far too small: bf16 weights, and a warning that says what to lower.
    launcher.devices = (DeviceMemory("gpu", "Tiny GPU", 0.05), DeviceMemory("ram", "system RAM", 64.0))
    launcher.editors["training.prompts_per_step"].setValue(64)  # type: ignore[attr-defined]
    cfg = launcher.validate()
    assert cfg is not None and launcher.memory_check is not None
    assert launcher.memory_check.dtype == "bfloat16" and launcher.memory_check.fits is False
    assert launcher.memory_warning.isVisible()
    assert (
        "Tiny GPU" in launcher.memory_warning.text() and "prompts_per_step" in launcher.memory_warning.text()
    )
    # device = "cpu" trains in RAM whatever GPU there is: it fits again.
    launcher.editors["training.device"].setCurrentText("cpu")  # type: ignore[attr-defined]
    assert launcher.validate() is not None and not launcher.memory_warning.isVisible()


def test_device_memory_is_read_from_nvidia_smi_or_the_system(tmp_path: Path, monkeypatch) -> None:
    ram = detect_ram()
    assert ram is not None and ram.total_gb > 0.1
    # The nvidia-smi process boundary: a script answering the query as the driver's tool does.
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559'\necho 'NVIDIA T4, 15360'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    gpu = detect_gpu()
    assert gpu is not None and gpu.name == "NVIDIA H100 80GB HBM3"
    assert abs(gpu.total_gb - 81559 * 2**20 / 1e9) < 1e-6
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert detect_gpu() is None


def test_the_dashboard_shows_a_finished_runs_measured_peak_against_the_estimate(
    qtbot, state, ws_path
) -> None:
    from helpers import add_run

    from engine.contract import schema
    from studio.widgets.dashboard import Dashboard

    run_id = add_run(ws_path, name="measured", steps=3)
    conn = schema.connect(str(ws_path))
    with conn:  # what the engine records at a run's last step (engine/memory_use.py)
        conn.executemany(
            "INSERT INTO metrics(run_id, step, key, value, time) VALUES (?, 3, ?, ?, 0)",
            [(run_id, "memory/peak_gb", 0.664), (run_id, "memory/estimate_gb", 0.275)],
        )
    conn.close()
    state.refresh()
    dashboard = Dashboard(state)
    qtbot.addWidget(dashboard)
    state.select_run(run_id)
    dashboard.update_view()
    assert "peak memory 664 MB measured, 275 MB estimated" in dashboard.header.detail.text()
