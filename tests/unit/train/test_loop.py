"""The training loop end to end on real facesets: loss falls, resume is bit-exact, saves survive kills."""

from __future__ import annotations

import io
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfxswap.cli import main
from vfxswap.errors import ConfigError, ModelError, OutputError
from vfxswap.model.autoencoder import FaceSwapModel
from vfxswap.model.card import ModelCard
from vfxswap.model.checkpoint import load_model, load_train_state
from vfxswap.train.data import FaceBank
from vfxswap.progress import Progress
from vfxswap.train.loop import (TrainConfig, expected_end, format_duration, init_from, parse_duration,
                                 train)


TOOLS = Path(__file__).resolve().parents[3] / "tools"


def _config(src, dst, out, **kw) -> TrainConfig:
    base = dict(src=src and str(src), dst=dst and str(dst), output=str(out), resolution=64, batch_size=8, iterations=20,
                save_every=10, preview_every=0, lr=1e-3, seed=3, workers=2)
    return TrainConfig(**{**base, **kw})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "weights.safetensors"))


class TestTrain:
    def test_loss_falls_and_outputs_are_written(self, src_faceset, dst_faceset, tmp_path):
        totals: list[float] = []
        report = train(_config(src_faceset, dst_faceset, tmp_path / "m", iterations=40, preview_every=20),
                       progress=lambda done, total, losses: totals.append(losses["total"]))
        assert report.steps == 40 and len(totals) == 40
        assert np.mean(totals[-5:]) < 0.8 * np.mean(totals[:5])
        model, card = load_model(tmp_path / "m")
        assert card.steps == 40 and card.resolution == 64
        assert sorted(p.name for p in (tmp_path / "m" / "previews").iterdir()) == ["00000020.png", "00000040.png"]
        lines = (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 4 and all("total" in line for line in lines)
        assert 0 <= report.data_wait_fraction < 1
        plot = subprocess.run([sys.executable, str(TOOLS / "plot_losses.py"), str(tmp_path / "m")],
                              capture_output=True, text=True)
        assert plot.returncode == 0, plot.stderr
        import cv2

        chart = cv2.imread(str(tmp_path / "m" / "losses.png"))
        assert chart.shape == (540, 960, 3) and (chart < 200).any()  # curves drawn on white

    def test_resume_reproduces_the_uninterrupted_run(self, src_faceset, dst_faceset, tmp_path):
        train(_config(src_faceset, dst_faceset, tmp_path / "straight", iterations=20))
        train(_config(src_faceset, dst_faceset, tmp_path / "stopped", iterations=10))
        train(_config(src_faceset, dst_faceset, tmp_path / "stopped", iterations=20, resume=True))
        a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "stopped")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        logged = [json.loads(line)["step"] for line in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
        assert logged == [10, 20]  # one line per logged step across the stop
        sa, sb = load_train_state(tmp_path / "straight"), load_train_state(tmp_path / "stopped")
        assert sa["step"] == sb["step"] == 20
        for ka, kb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
            assert torch.equal(ka["exp_avg"], kb["exp_avg"]) and torch.equal(ka["exp_avg_sq"], kb["exp_avg_sq"])

    def test_lr_given_on_resume_is_used(self, src_faceset, dst_faceset, tmp_path):
        train(_config(src_faceset, dst_faceset, tmp_path / "m", iterations=2, save_every=2))
        train(_config(src_faceset, dst_faceset, tmp_path / "m", iterations=3, save_every=3, resume=True, lr=5e-5))
        assert load_train_state(tmp_path / "m")["optimizer"]["param_groups"][0]["lr"] == 5e-5

    def test_an_existing_model_is_not_overwritten(self, src_faceset, dst_faceset, tmp_path):
        train(_config(src_faceset, dst_faceset, tmp_path / "m", iterations=2, save_every=2))
        before = (tmp_path / "m" / "weights.safetensors").read_bytes()
        with pytest.raises(OutputError, match="--resume"):
            train(_config(src_faceset, dst_faceset, tmp_path / "m", iterations=4))
        assert (tmp_path / "m" / "weights.safetensors").read_bytes() == before

    def test_nan_stops_with_a_clear_error_and_keeps_the_checkpoint(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        train(_config(src_faceset, dst_faceset, out, iterations=2, save_every=2))
        state = load_train_state(out)
        for k, v in state["model"].items():
            if k.endswith("weight") and v.is_floating_point():
                v.fill_(math.nan)
                break
        torch.save(state, out / "train_state.pt")
        kept = (out / "weights.safetensors").read_bytes()
        with pytest.raises(ModelError, match="loss became nan at step 3.*step 2"):
            train(_config(src_faceset, dst_faceset, out, iterations=4, resume=True))
        assert (out / "weights.safetensors").read_bytes() == kept


    def test_channels_last_trains_the_same_model(self, src_faceset, dst_faceset, tmp_path):
        a = train(_config(src_faceset, dst_faceset, tmp_path / "a", iterations=3, save_every=3))
        b = train(_config(src_faceset, dst_faceset, tmp_path / "b", iterations=3, save_every=3, channels_last=True))
        assert a.losses.keys() == b.losses.keys()
        assert all(abs(a.losses[k] - b.losses[k]) < 1e-3 * max(1.0, abs(a.losses[k])) for k in a.losses)


@pytest.mark.gpu
def test_cuda_amp_channels_last_and_compile(src_faceset, dst_faceset, tmp_path):
    for amp in ("bf16", "fp16"):
        report = train(_config(src_faceset, dst_faceset, tmp_path / amp, iterations=6, save_every=6, device="cuda",
                               amp=amp, compile=amp == "bf16"))
        assert all(math.isfinite(v) for v in report.losses.values())
        model, card = load_model(tmp_path / amp)
        assert card.steps == 6


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "vfxswap.cli", *map(str, args)]


class TestTrainCli:
    def test_kill_during_saves_never_leaves_an_unloadable_model(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        cmd = _cli("train", "--src", src_faceset, "--dst", dst_faceset, "-o", out, "--resolution", "64",
                   "--batch-size", "2", "--iterations", "100000", "--save-every", "1", "--preview-every", "0",
                   "--progress", "none")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kills = 0
        try:
            deadline = time.monotonic() + 240  # generous: a busy 2-core CI box trains slowly
            while not (out / "card.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            rng = np.random.default_rng(0)
            while kills < 6 and time.monotonic() < deadline:
                time.sleep(float(rng.uniform(0.05, 0.6)))  # saves happen every step: land anywhere in one
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                model, card = load_model(out)  # loadable after every kill
                state = load_train_state(out)
                assert state["step"] >= 1 and card.steps >= 1
                proc = subprocess.Popen(cmd + ["--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while proc.poll() is None and load_train_state(out)["step"] == state["step"] and time.monotonic() < deadline:
                    time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait()
        assert kills == 6

    def test_sigterm_saves_and_exits_130(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        proc = subprocess.Popen(_cli("train", "--src", src_faceset, "--dst", dst_faceset, "-o", out,
                                     "--resolution", "64", "--batch-size", "2", "--iterations", "100000",
                                     "--save-every", "100000", "--preview-every", "0", "--progress", "plain"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (out / "metrics.jsonl").exists():
            time.sleep(0.05)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert load_train_state(out)["step"] > 0

    def test_malicious_train_state_is_refused_on_resume(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        train(_config(src_faceset, dst_faceset, out, iterations=1, save_every=1))
        marker = tmp_path / "pwned"
        payload = (b"\x80\x04\x95" + b"\x00" * 8 + b"\x8c\x02os\x8c\x06system\x93\x8c"
                   + bytes([len(f"touch {marker}")]) + f"touch {marker}".encode() + b"\x85R.")
        (out / "train_state.pt").write_bytes(payload)
        result = subprocess.run(_cli("train", "--src", src_faceset, "--dst", dst_faceset, "-o", out,
                                     "--iterations", "2", "--resume"), capture_output=True, text=True)
        assert result.returncode == 3 and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1 and "not a vfxswap training state" in result.stderr
        assert not marker.exists()


def test_torchrun_two_cpu_processes_with_gloo(src_faceset, dst_faceset, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "vfxswap.cli", "train", "--src", str(src_faceset), "--dst", str(dst_faceset), "-o", str(out),
         "--resolution", "64", "--batch-size", "4", "--iterations", "12", "--save-every", "6",
         "--preview-every", "0", "--lr", "1e-3", "--progress", "plain"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("trained to step 12") == 1  # rank 0 reports, rank 1 stays quiet
    model, card = load_model(out)
    assert card.steps == 12 and load_train_state(out)["step"] == 12
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 12]  # written by rank 0 only


class TestTimeLimit:
    @pytest.mark.parametrize("text, seconds", [("90", 90), ("2.5", 2.5), ("90s", 90), ("45m", 2700), ("2h", 7200),
                                               ("1h30m", 5400), ("1.5h", 5400), ("1m30s", 90), (" 2H ", 7200)])
    def test_durations_that_read(self, text, seconds):
        assert parse_duration(text) == seconds
        assert parse_duration(format_duration(seconds)) == round(seconds)

    @pytest.mark.parametrize("text", ["", "0", "0s", "soon", "-5", "1e3", "inf", "nan", "m", "h30", "30m1h", "1h 30m"])
    def test_durations_that_do_not(self, text):
        with pytest.raises(ConfigError, match="--time-limit") as refused:
            parse_duration(text)
        assert "\n" not in str(refused.value)

    def test_a_run_stops_on_its_budget_and_saves(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        t0 = time.monotonic()
        report = train(_config(src_faceset, dst_faceset, out, iterations=None, time_limit=3.0, save_every=100000))
        elapsed = time.monotonic() - t0
        assert report.stopped_on_time_limit and report.steps > 0
        assert 3.0 <= elapsed < 3.0 + 15  # one last step and the save after the budget (a busy 2-core box)
        model, card = load_model(out)
        assert card.steps == report.steps == load_train_state(out)["step"]
        assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == report.steps

    def test_a_resumed_run_counts_its_budget_from_the_resume(self, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        first = train(_config(src_faceset, dst_faceset, out, iterations=None, time_limit=2.0))
        t0 = time.monotonic()
        again = train(_config(src_faceset, dst_faceset, out, iterations=None, time_limit=2.0, resume=True))
        assert time.monotonic() - t0 >= 2.0
        assert again.stopped_on_time_limit and again.first_step == first.steps < again.steps
        assert load_model(out)[1].steps == again.steps
        # --iterations reached first ends the run before the budget
        done = train(_config(src_faceset, dst_faceset, out, iterations=again.steps + 2, time_limit=600.0, resume=True))
        assert done.steps == again.steps + 2 and not done.stopped_on_time_limit

    def test_iterations_or_time_limit_is_needed(self):
        with pytest.raises(ConfigError, match="--iterations or --time-limit"):
            TrainConfig(src="s", dst="d", output="o", iterations=None)
        with pytest.raises(ConfigError, match="--time-limit must be longer than 0"):
            TrainConfig(src="s", dst="d", output="o", time_limit=0)

    def test_the_cli_flag_end_to_end(self, src_faceset, dst_faceset, tmp_path, capsys):
        out = tmp_path / "m"
        base = ["train", "--src", str(src_faceset), "--dst", str(dst_faceset), "-o", str(out), "--resolution", "64",
                "--batch-size", "4", "--preview-every", "0", "--progress", "plain"]
        assert main([*base, "--time-limit", "4s"]) == 0
        printed = capsys.readouterr().out
        assert "stopped at the time limit (4s); --resume continues" in printed
        assert re.search(r"Progress: \d+% \(\d+/\d+ steps", printed), printed
        assert load_model(out)[1].steps == load_train_state(out)["step"] > 0
        assert main([*base, "--time-limit", "soon", "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--time-limit: 'soon' is not a duration" in err


def test_progress_lines_show_steps_per_second_and_time_left():
    stream = io.StringIO()
    progress = Progress("plain", unit="steps", stream=stream, interval=0, speed=True)
    progress(1, 50)
    time.sleep(0.2)
    progress(5, 40)  # a time-limited run's total is an estimate that moves
    first, second = stream.getvalue().splitlines()
    assert first == "Progress: 2% (1/50 steps)"
    found = re.fullmatch(r"Progress: 12% \(5/40 steps, ([\d.]+) steps/s, (\d+)m(\d\d)s left\)", second)
    assert found, second
    rate = float(found.group(1))
    assert 5 < rate < 25 and abs(int(found.group(2)) * 60 + int(found.group(3)) - 35 / rate) <= 1


def test_expected_end_follows_the_budget():
    assert expected_end(10, 0, 5.0, None, 100) == 100  # no budget: the iterations
    assert expected_end(10, 0, 5.0, 10.0, None) == 30  # 2 steps/s, 10 s left
    assert expected_end(10, 0, 5.0, 10.0, 20) == 20  # iterations come first
    assert expected_end(10, 0, 5.0, -1.0, None) == 10  # spent: this is the last step


@pytest.fixture(scope="class")
def pretrained(src_faceset, dst_faceset, tmp_path_factory) -> Path:
    """A 64 px df model pretrained for 4 steps on the pool of both session facesets."""
    out = tmp_path_factory.mktemp("pretrained") / "p"
    train(_config(None, None, out, pretrain=(str(src_faceset), str(dst_faceset)), iterations=4, save_every=4))
    return out


class TestPretrainAndInit:
    def test_pretrain_marks_the_card_and_resumes_only_as_pretraining(self, pretrained, src_faceset, dst_faceset):
        card = ModelCard.load(pretrained)
        assert card.pretrained and card.steps == 4 and card.init_from == ""
        with pytest.raises(ConfigError, match="is a pretrained model: .*--init"):
            train(_config(src_faceset, dst_faceset, pretrained, iterations=5, resume=True))
        with pytest.raises(ConfigError, match="drop --src and --dst"):
            _config(src_faceset, dst_faceset, pretrained, pretrain=(str(src_faceset),))

    def test_pretrain_feeds_the_union_to_both_sides(self, src_bank, dst_bank):
        pool = FaceBank.merged([src_bank, dst_bank])
        assert len(pool) == len(src_bank) + len(dst_bank) and pool.images.shape[1:] == (64, 64, 3)
        assert np.array_equal(pool.images[len(src_bank):], dst_bank.images)

    def test_init_copies_the_pretrained_weights_at_step_0(self, pretrained):
        theirs = load_file(str(pretrained / "weights.safetensors"))
        card = ModelCard.from_preset("cpu", resolution=64)
        torch.manual_seed(0)
        model = FaceSwapModel(card)
        fresh = {k: v.clone() for k, v in model.state_dict().items()}
        copied = init_from(model, card, pretrained)
        assert sorted(copied) == sorted(model.state_dict())  # decoders too by default
        assert all(torch.equal(model.state_dict()[k], theirs[k]) for k in copied)
        torch.manual_seed(0)
        model = FaceSwapModel(card)
        copied = init_from(model, card, pretrained, decoders=False)
        assert any(k.startswith("encoder.") for k in copied) and any(k.startswith("inter.") for k in copied)
        assert not any(k.startswith("decoder") for k in copied)
        for k, v in model.state_dict().items():
            assert torch.equal(v, theirs[k] if k in copied else fresh[k]), k

    def test_a_pair_trained_from_init(self, pretrained, src_faceset, dst_faceset, tmp_path):
        out = tmp_path / "m"
        report = train(_config(src_faceset, dst_faceset, out, init=str(pretrained), iterations=2, save_every=2))
        card = ModelCard.load(out)
        assert card.init_from == str(pretrained) and not card.pretrained and card.steps == 2
        assert report.first_step == 0 and report.init_tensors == len(load_file(str(out / "weights.safetensors")))
        state = load_train_state(out)
        assert state["step"] == 2 and all(float(s["step"]) == 2 for s in state["optimizer"]["state"].values())

    def test_init_from_another_resolution_or_arch_is_refused(self, pretrained, src_faceset, dst_faceset, tmp_path):
        with pytest.raises(ModelError, match=r"resolution 64 \(this run: 80\).*--resolution") as refused:
            train(_config(src_faceset, dst_faceset, tmp_path / "a", init=str(pretrained), resolution=80))
        assert "\n" not in str(refused.value) and not (tmp_path / "a").exists()
        with pytest.raises(ModelError, match=r"arch df \(this run: liae\)"):
            train(_config(src_faceset, dst_faceset, tmp_path / "b", init=str(pretrained), arch="liae"))
        with pytest.raises(ModelError, match="other widths"):
            train(_config(src_faceset, dst_faceset, tmp_path / "c", init=str(pretrained), preset="gpu"))

    def test_init_and_resume_together_exit_2(self, pretrained, src_faceset, dst_faceset, tmp_path, capsys):
        code = main(["train", "--src", str(src_faceset), "--dst", str(dst_faceset), "-o", str(tmp_path / "m"),
                     "--init", str(pretrained), "--resume", "--progress", "none"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "--init starts a new model and --resume continues one" in err
