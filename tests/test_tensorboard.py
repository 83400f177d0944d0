"""TensorBoard event files of training and perplexity runs, read back with tensorboard's
own event reader."""

import re
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from test_train import run, toy_options


def read_events(logdir):
    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0, event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def scalar_values(events, tag):
    return [(event.step, event.value) for event in events.Scalars(tag)]


@pytest.fixture
def trained_with_events(toy):
    options = toy_options(toy, max_epoch=2, tensorboard=str(toy / "tb"), gradient_clipping=1.0)
    status, out = run(options, toy / "toy-i8-m8")
    assert status == 0
    return toy, out


def test_training_writes_curves_histograms_config_and_hparams(trained_with_events):
    toy, out = trained_with_events
    events = read_events(toy / "tb")
    tags = events.Tags()
    printed_dev = [float(value) for value in re.findall(r"development perplexity = +([0-9.]+)", out)]
    dev = scalar_values(events, "epoch/dev_perplexity")
    assert [step for step, _ in dev] == [1, 2]
    assert [value for _, value in dev] == pytest.approx(printed_dev, rel=1e-6)
    assert scalar_values(events, "final/dev_perplexity")[0][1] == pytest.approx(min(printed_dev), rel=1e-6)
    assert [value for _, value in scalar_values(events, "epoch/learning_rate")] == pytest.approx([0.05, 0.05])
    for tag in ("epoch/train_perplexity", "epoch/words_per_second"):
        assert len(events.Scalars(tag)) == 2
    words = [step for step, _ in scalar_values(events, "batch/train_perplexity")]
    assert words == sorted(words) and len(words) >= 2 and words[0] > 0
    assert all(value > 0 for _, value in scalar_values(events, "batch/gradient_norm"))
    assert len(events.Scalars("batch/words_per_second")) == len(words)
    parameters = {"layer1.E", "layer2.W", "layer2.R", "layer2.p", "layer2.b", "output.W_class", "output.b_class"}
    assert {f"params/{name}" for name in parameters} <= set(tags["histograms"])
    assert {f"grads/{name}" for name in parameters} <= set(tags["histograms"])
    histogram = events.Histograms("params/layer2.W")
    assert [event.step for event in histogram] == [1, 2] and histogram[-1].histogram_value.num == 4 * 8 * 8
    config = events.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| learning_rate | 0.05 |" in config and "| network | toy-i8-m8 |" in config
    start = hparams_metadata.parse_session_start_info_plugin_data(
        events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    assert start.hparams["network"].string_value == "toy-i8-m8"
    assert start.hparams["batch_size"].number_value == 8
    assert start.hparams["dropout"].number_value == 0 and start.hparams["tie_weights"].bool_value is False
    experiment = hparams_metadata.parse_experiment_plugin_data(
        events.SummaryMetadata("_hparams_/experiment").plugin_data.content)
    assert {metric.name.tag for metric in experiment.metric_infos} == {"final/dev_perplexity",
                                                                       "final/test_perplexity"}


def test_perplexity_adds_the_test_metric_to_the_run(trained_with_events):
    from rwthlm_py.config import Options

    toy, _ = trained_with_events
    status, out = run(Options(ppl=str(toy / "test.txt"), tensorboard=str(toy / "tb")), toy / "toy-i8-m8")
    assert status == 0
    perplexity = float(out.strip().splitlines()[-1])
    assert scalar_values(read_events(toy / "tb"), "final/test_perplexity")[0][1] == pytest.approx(perplexity, rel=1e-6)


def test_a_resumed_run_continues_the_word_steps(trained_with_events):
    toy, _ = trained_with_events
    first = [step for step, _ in scalar_values(read_events(toy / "tb"), "batch/train_perplexity")]
    status, _ = run(toy_options(toy, max_epoch=3, tensorboard=str(toy / "tb"), gradient_clipping=1.0),
                    toy / "toy-i8-m8")
    assert status == 0
    steps = [step for step, _ in scalar_values(read_events(toy / "tb"), "batch/train_perplexity")]
    assert steps[:len(first)] == first and min(steps[len(first):]) > max(first)
    assert [step for step, _ in scalar_values(read_events(toy / "tb"), "epoch/dev_perplexity")] == [1, 2, 3]


def test_writing_events_imports_neither_tensorflow_nor_torch(toy):
    script = ("import sys; from rwthlm_py.output.tensorboard_log import EventLog; log = EventLog(sys.argv[1]); "
              "log.scalar('a', 1.0, 0); log.histogram('h', [1.0, 2.0], 0); log.text('t', 'x'); "
              "log.hparams({'network': 'n'}); log.close(); "
              "print(sorted(m for m in ('tensorflow', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script, str(toy / "tb")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
