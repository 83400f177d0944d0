"""rwthlm-py train's initial learning rate (rate_search_heldout.py): the bracketed search's
decisions on scripted held-out perplexities, its grid and bounds, the chosen trial
continued as epoch 1, the trials' progress and TensorBoard figures, and the command line."""

import io
import math
import re
import types

import numpy
import pytest
from conftest import assert_one_line_error
from test_tensorboard import read_events, scalar_values

from rwthlm_py import cli, commands, preparation
from rwthlm_py.config import Options
from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import model_vocabulary, read_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.output import reporting
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data
from rwthlm_py.training import rate_search_heldout, train
from rwthlm_py.training.epoch_checkpoint import EpochCheckpoints, EpochPosition
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.selftest import synthetic_corpus
from rwthlm_py.training.train import Schedule

BASE = 0.025  # the grid's k = 0 for 20 sequences of 35 predicted words


def search(class_vocab, monkeypatch, perplexity_at, max_trials=7, batch_size=20, sequence_length=36, base=BASE):
    """The chosen rate and the grid steps k tried, where a trial at k scores perplexity_at(k)
    (each rate tried must be base 2^k)."""
    tried = []

    def scripted_training(self, rate, number):
        k = round(math.log2(rate / base))
        assert rate == pytest.approx(base * 2.0 ** k, rel=1e-12) and number == len(tried) + 1
        tried.append(k)
        return EpochPosition()

    monkeypatch.setattr(rate_search_heldout._Search, "_train", scripted_training)
    monkeypatch.setattr(rate_search_heldout, "_judge", lambda *args: perplexity_at(tried[-1]))
    monkeypatch.setattr(rate_search_heldout, "trial_plan", lambda epoch_words: (1, max_trials))
    corpus = synthetic_corpus(class_vocab, seed=2)
    network = Network.build(parse_network("t-i3-m2"), class_vocab, get_backend("numpy"), seed=1)
    schedule = Schedule(batch_size=batch_size, sequence_length=sequence_length)
    order = data.wrap(corpus, "fixed", batch_size, sequence_length)
    rate, _ = rate_search_heldout.search_learning_rate(network, Sgd(network), corpus, order, corpus, order, schedule,
                                               Console(out=io.StringIO(), err=io.StringIO()))
    return rate, tried


def searchable(monkeypatch, trial_share=1):
    """Lets any epoch be searched, with trials of 1/trial_share of it (three at most)."""
    monkeypatch.setattr(rate_search_heldout, "EXTRA_SHARE", 2.0 / trial_share)
    monkeypatch.setattr(rate_search_heldout, "MIN_TRIAL_WORDS", 1)


def test_doubles_while_the_held_out_perplexity_improves(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + (k - 2) ** 2)
    assert tried == [0, 1, 2, 3] and rate == BASE * 4


def test_halves_while_it_improves_when_doubling_does_not(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + (k + 2) ** 2)
    assert tried == [0, 1, -1, -2, -3] and rate == BASE / 4


def test_halving_goes_on_past_diverged_trials(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: math.inf if k > -3 else 100 + (k + 4) ** 2)
    assert tried == [0, 1, -1, -2, -3, -4, -5] and rate == BASE / 16


def test_a_tie_goes_to_the_smaller_rate(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100.0 if k in (0, -1) else 200.0)
    assert tried == [0, 1, -1] and rate == BASE / 2


def test_at_most_the_trials_of_the_plan(class_vocab, monkeypatch):
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 - k)
    assert tried == [0, 1, 2, 3, 4, 5, 6] and rate == BASE * 64
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + k, max_trials=3)
    assert tried == [0, 1, -1] and rate == BASE / 2


def test_the_grid_scales_with_the_words_of_a_batch():
    tuned, batch_words = rate_search_heldout.TUNED_RATE, rate_search_heldout.TUNED_BATCH_WORDS
    assert tuned * (20 * 35) / batch_words == 0.025  # exactly the recipe's
    assert tuned * (64 * 35) / batch_words == pytest.approx(0.08, rel=1e-15)


def test_the_grid_of_another_batch_shape_is_scaled_by_its_predicted_words(class_vocab, monkeypatch):
    """B = 64 sequences of T - 1 = 20 predicted words: k = 0 is 0.025 * 1280 / 700."""
    base = 0.025 * (64 * 20) / 700
    rate, tried = search(class_vocab, monkeypatch, lambda k: 100 + (k - 2) ** 2, batch_size=64, sequence_length=21,
                         base=base)
    assert tried == [0, 1, 2, 3] and rate == pytest.approx(base * 4, rel=1e-12)


def test_the_command_lines_choose_their_own_searches(toy, monkeypatch, capsys):
    searchable(monkeypatch, trial_share=3)
    monkeypatch.chdir(toy)
    common = ["--train", "train.txt", "--dev", "dev.txt", "--vocab", "vocab", "--max-epoch", "1", "--batch-size", "4",
              "--sequence-length", "11"]
    assert cli.main(["train", *common, "ours-i8-m8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tried = [line for line in lines if line.startswith("  learning rate ")]
    assert 2 <= len(tried) <= 7 and any(line.startswith("Searching the initial learning rate") for line in lines)
    chosen = float(next(line for line in lines if line.startswith("initial learning rate: ")).split()[3])
    assert any(line.startswith(f"  learning rate {chosen:.4e}:") for line in tried)
    assert cli.rwthlm_main([*common, "theirs-i8-m8"]) == 0
    out = capsys.readouterr().out
    assert "Determining initial learning rate ..." in out and "Searching" not in out and "Continuing" not in out


def test_leading_batches_are_the_fewest_whole_batches_holding_the_words():
    sequences = data.Sequences(numpy.arange(0, 70, 10), numpy.arange(0, 70, 10) + [4, 4, 3, 3, 2, 2, 1])
    # batches of 2 sequences hold 8, 6, 4 and 1 words
    assert len(rate_search_heldout.leading_batches(sequences, 2, 9)) == 4  # 8 + 6 >= 9
    assert len(rate_search_heldout.leading_batches(sequences, 2, 8)) == 2
    assert len(rate_search_heldout.leading_batches(sequences, 2, 19)) == 7 == len(
        rate_search_heldout.leading_batches(sequences, 2, 1000))  # all there are
    kept = rate_search_heldout.leading_batches(sequences, 2, 13)
    assert kept.first.tolist() == [0, 10, 20, 30] and kept.end.tolist() == [4, 14, 23, 33]


def test_the_trials_beside_the_chosen_one_train_on_45_percent_of_the_epoch_at_most():
    assert rate_search_heldout.trial_plan(929_589) == (200_000, 3)  # PTB: 2 x 200,000 <= 418,315
    assert rate_search_heldout.trial_plan(2_088_628) == (200_000, 5)  # WikiText-2
    assert rate_search_heldout.trial_plan(10_000_000) == (200_000, 7)
    assert rate_search_heldout.trial_plan(800_000) == (180_000, 3)
    assert rate_search_heldout.trial_plan(666_667) == (150_000, 3)
    assert rate_search_heldout.trial_plan(666_666) is None
    assert rate_search_heldout.trial_plan(66_443) is None  # the first 3,000 lines of PTB


def test_an_epoch_too_short_to_search_starts_at_the_grids_first_rate(tmp_path, toy, monkeypatch):
    console, updates, (rate, head_start) = toy_training(toy, tmp_path / "toy-i8-m8", monkeypatch,
                                                        trial_share=None, searched=False,
                                                        tensorboard=str(tmp_path / "tb"))
    assert rate == 0.025 * 40 / 700 and head_start is None  # batches of 4 x 10 words
    out = console.out.getvalue()
    assert (f"initial learning rate: {rate:.4e} (not searched: two trials of 150,000 words besides the chosen one "
            f"would train on more than 45% of the epoch's {epoch_words(toy):,} words)") in out
    assert "  learning rate " not in out and "Continuing" not in out and "trial" not in console.err.getvalue()
    assert updates == 2 * epoch_batches(toy)  # the two epochs, nothing else
    assert read_model(tmp_path / "toy-i8-m8").training_state.learning_rate == rate
    assert not any(tag.startswith("rate_search/") for tag in read_events(tmp_path / "tb").Tags()["scalars"])


# -- the chosen trial continued as epoch 1 (float64: bitwise comparisons) --------------------------

def toy_training(toy, model, monkeypatch, trial_share=None, searched=True, **changes):
    """Trains the toy text with rwthlm-py train's settings (momentum, dropout and a carried
    state too) in float64; returns (console, the number of updates, what the search
    returned: (rate, HeadStart) or None). `trial_share`: trials of 1/trial_share of the
    epoch, None: of all of it; `searched`: False keeps the rules that make it too short."""
    if searched:
        searchable(monkeypatch, trial_share or 1)
    options = Options(train=str(toy / "train.txt"), dev=str(toy / "dev.txt"), batch_size=4, sequence_length=11,
                      word_wrapping="stream", gradient_clipping=0.25, min_improvement=1.01, momentum=0.3,
                      dropout=0.2, random_seed=3, dtype="float64", max_epoch=2).replace(**changes)
    updates, chosen = [0], []
    monkeypatch.setattr(train, "train_batch", _counted(train.train_batch, updates))
    monkeypatch.setattr(commands, "search_learning_rate", _recorded(rate_search_heldout.search_learning_rate, chosen))
    console = Console(out=io.StringIO(), err=io.StringIO(), log_interval=0.0)
    status = commands.train_job(preparation.model_setup(options),
                                commands.training_settings(options, commands.heldout_rate_search), str(model),
                                get_backend("numpy", "float64"), console)
    assert status == 0
    return console, updates[0], chosen[0] if chosen else None


def _recorded_resume(resume, calls):
    def recorded(progress, words, neg_log_prob, seconds=None):
        calls.append((words, seconds))
        return resume(progress, words, neg_log_prob, seconds)
    return recorded


def _counted(function, count):
    def counted(*args, **kwargs):
        count[0] += 1
        return function(*args, **kwargs)
    return counted


def _recorded(function, results):
    def recorded(*args, **kwargs):
        results.append(function(*args, **kwargs))
        return results[-1]
    return recorded


def epoch_words(toy):
    """Predicted words of an epoch of the toy text: every word, and one <sb> per line."""
    return sum(len(line.split()) + 1 for line in (toy / "train.txt").read_text().splitlines())


def epoch_batches(toy):
    """Batches of an epoch of the toy text (4 columns of 10 predicted words)."""
    return math.ceil(epoch_words(toy) / 4 / 10)


def assert_same_model(path_a, path_b):
    a, b = read_model(path_a), read_model(path_b)
    assert a.training_state == b.training_state
    for name in a.params:
        assert numpy.array_equal(a.params[name], b.params[name]), name
    for name in a.momentum:
        assert numpy.array_equal(a.momentum[name], b.momentum[name]), name


def result_lines(console):
    """The dev lines, and the training perplexities of the epochs (not their words/s)."""
    dev = [line for line in console.out.getvalue().splitlines() if line.startswith("development perplexity =")]
    train_ppl = re.findall(r"training perplexity ([0-9.]+)", console.err.getvalue())
    return dev, train_ppl


@pytest.mark.parametrize("wrapping", ["stream", "fixed"])  # fixed: epoch 1's batches are shuffled
@pytest.mark.parametrize("trial_share", [None, 3])
def test_the_chosen_trial_is_the_start_of_epoch_1_not_trained_again(tmp_path, toy, monkeypatch, trial_share, wrapping):
    resumed = []
    with monkeypatch.context() as spy:
        spy.setattr(reporting.Progress, "resume", _recorded_resume(reporting.Progress.resume, resumed))
        searched, updates, (rate, chosen) = toy_training(toy, tmp_path / "searched-i8-m8", monkeypatch, trial_share,
                                                         word_wrapping=wrapping)
    given, given_updates, _ = toy_training(toy, tmp_path / "given-i8-m8", monkeypatch, trial_share,
                                           learning_rate=rate, word_wrapping=wrapping)
    assert ("Shuffling ... done" in searched.out.getvalue()) == (wrapping == "fixed")
    # epoch 1 counts the trial's words and the seconds it took in its words/s
    assert resumed[0] == (chosen.position.words, chosen.position.seconds) and chosen.position.seconds > 0
    assert_same_model(tmp_path / "searched-i8-m8", tmp_path / "given-i8-m8")
    assert result_lines(searched) == result_lines(given)  # the same epochs, digit for digit
    total = epoch_batches(toy)
    trial = chosen.position.batches_done
    assert (trial == total) if trial_share is None else (0 < trial < total)
    trials = searched.out.getvalue().count("  learning rate ")
    continuing = f"Continuing epoch 1 after batch {trial} of {total} from the learning-rate trial ..."
    assert continuing in searched.out.getvalue()
    # every trial once, then the rest of epoch 1 and epoch 2; without the search, two epochs
    assert (updates, given_updates) == (trials * trial + (total - trial) + total, 2 * total)


def test_the_trials_words_and_seconds_count_in_the_words_per_second_of_epoch_1(monkeypatch):
    clock = types.SimpleNamespace(perf_counter=lambda: now[0])
    now = [100.0]
    monkeypatch.setattr(reporting, "time", clock)
    console = Console(out=io.StringIO(), err=io.StringIO())
    continued, resumed = console.progress("epoch 1", 1000), console.progress("epoch 1", 1000)
    continued.resume(400, 0.0, seconds=10.0)  # a trial's 400 words, trained by this process in 10 s
    resumed.resume(400, 0.0)  # a killed run's, whose time is not known
    now[0] += 5.0
    for progress in (continued, resumed):
        progress.update(100)
    assert continued.words_per_second == 500 / 15 and resumed.words_per_second == 100 / 5


def test_a_run_stopped_after_the_search_or_in_the_continued_epoch_ends_as_an_uninterrupted_one(
        tmp_path, toy, monkeypatch):
    whole, _, _ = toy_training(toy, tmp_path / "whole-i8-m8", monkeypatch, trial_share=3)
    stopped = tmp_path / "stopped-i8-m8"
    with monkeypatch.context() as stop:
        stop.setattr(train.Trainer, "train", _interrupted)
        with pytest.raises(KeyboardInterrupt):
            toy_training(toy, stopped, stop, trial_share=3)
    saved = read_model(stopped)  # epoch 0: the initial weights at the chosen rate
    assert saved.training_state.epoch == 0
    assert saved.training_state.learning_rate == read_model(tmp_path / "whole-i8-m8").training_state.learning_rate
    initial = Network.build(parse_network("stopped-i8-m8"), model_vocabulary(saved),
                            get_backend("numpy", "float64"), seed=3)
    for name, value in initial.named_params().items():
        assert numpy.array_equal(saved.params[name], value), name
    rerun, _, _ = toy_training(toy, stopped, monkeypatch, trial_share=3)
    assert_same_model(tmp_path / "whole-i8-m8", stopped)
    assert result_lines(rerun) == result_lines(whole)

    checkpointed = tmp_path / "checkpointed-i8-m8"
    with monkeypatch.context() as stop:
        stop.setattr(EpochCheckpoints, "save", _then_interrupted(EpochCheckpoints.save))
        with pytest.raises(KeyboardInterrupt):
            toy_training(toy, checkpointed, stop, trial_share=3, checkpoint_every=1e-9)
    resumed, _, _ = toy_training(toy, checkpointed, monkeypatch, trial_share=3, checkpoint_every=1e-9)
    assert "Resuming epoch 1 after batch " in resumed.out.getvalue()
    assert_same_model(tmp_path / "whole-i8-m8", checkpointed)
    assert result_lines(resumed) == result_lines(whole)  # the partial epoch kept the trial's totals


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def _then_interrupted(function):
    def save_then_stop(*args, **kwargs):
        function(*args, **kwargs)
        raise KeyboardInterrupt
    return save_then_stop


def test_every_trial_shows_its_progress(tmp_path, toy, monkeypatch):
    console, _, _ = toy_training(toy, tmp_path / "toy-i8-m8", monkeypatch, trial_share=3, max_epoch=1)
    rates = re.findall(r"^  learning rate (\S+): development", console.out.getvalue(), re.MULTILINE)
    progress = re.findall(r"^trial (\d+) \(learning rate (\S+)\): +([0-9.]+)% \| [0-9,]+ words/s \| ETA \S+ \| ppl ",
                          console.err.getvalue(), re.MULTILINE)
    assert len(rates) >= 3
    assert sorted({(int(number), rate) for number, rate, _ in progress}) == [
        (number, rate) for number, rate in enumerate(rates, start=1)]
    for number in range(1, len(rates) + 1):
        shown = [float(percent) for trial, _, percent in progress if int(trial) == number]
        assert len(shown) > 1 and shown == sorted(shown) and shown[-1] == 100.0


def test_the_trials_figures_go_to_tensorboard(tmp_path, toy, monkeypatch):
    console, _, (rate, _) = toy_training(toy, tmp_path / "toy-i8-m8", monkeypatch, trial_share=3, max_epoch=1,
                                         tensorboard=str(tmp_path / "tb"))
    printed = re.findall(r"^  learning rate (\S+): development perplexity (\S+)$", console.out.getvalue(),
                         re.MULTILINE)
    events = read_events(tmp_path / "tb")
    rates = scalar_values(events, "rate_search/learning_rate")
    dev = scalar_values(events, "rate_search/dev_perplexity")
    train_ppl = scalar_values(events, "rate_search/train_perplexity")
    steps = list(range(1, len(printed) + 1))
    assert [step for step, _ in rates] == [step for step, _ in dev] == [step for step, _ in train_ppl] == steps
    assert [value for _, value in rates] == pytest.approx([float(rate) for rate, _ in printed], rel=1e-4)
    assert [value for _, value in dev] == pytest.approx([float(ppl) for _, ppl in printed], abs=0.006)
    assert all(1.0 < value < 100.0 for _, value in train_ppl)
    best = min(range(len(dev)), key=lambda index: (dev[index][1], rates[index][1]))
    assert rates[best][1] == pytest.approx(rate, rel=1e-6)
    assert [step for step, _ in scalar_values(events, "epoch/dev_perplexity")] == [1]


def test_trials_train_and_are_judged_on_the_leading_batches_only(tmp_path, toy, monkeypatch):
    monkeypatch.setattr(rate_search_heldout, "JUDGE_WORDS", 100)
    judged, score_on_ranks = [], rate_search_heldout.score_on_ranks

    def spied(network, corpus, sequences, *args, **kwargs):
        judged.append(sequences)
        return score_on_ranks(network, corpus, sequences, *args, **kwargs)

    monkeypatch.setattr(rate_search_heldout, "score_on_ranks", spied)
    console, _, (_, chosen) = toy_training(toy, tmp_path / "toy-i8-m8", monkeypatch, trial_share=3, max_epoch=1)
    trained, dev = (re.search(r"trials of ([0-9,]+) training words, judged by the perplexity of ([0-9,]+) "
                              r"development words", console.out.getvalue()).groups())
    share = int(2 / 3 * epoch_words(toy)) // 2  # a third, and the batch that reaches it, of at most 40 words
    assert share <= chosen.position.words == int(trained.replace(",", "")) < share + 40
    dev_order = data.wrap(data.read_corpus(toy / "dev.txt", model_vocabulary(read_model(tmp_path / "toy-i8-m8"))),
                          "stream", 4, 11)
    assert len(judged) == console.out.getvalue().count("  learning rate ")
    for sequences in judged:
        words = int((sequences.end - sequences.first).sum())
        assert words == int(dev.replace(",", "")) and 100 <= words < 140 and len(sequences) % 4 == 0
        assert numpy.array_equal(sequences.first, dev_order.first[:len(sequences)])


def test_a_search_whose_every_trial_diverged_stops_with_one_line(class_vocab, monkeypatch):
    with pytest.raises(InputError) as stopped:
        search(class_vocab, monkeypatch, lambda k: math.inf, max_trials=4)
    assert stopped.value.format() == (
        "every trial of the learning-rate search diverged (4 rates, 6.2500e-03 to 5.0000e-02, scaled for "
        "--batch-size 20 and --sequence-length 36): give --learning-rate, or a smaller --batch-size")
    rate, tried = search(class_vocab, monkeypatch, lambda k: math.inf if k != -3 else 1e4, max_trials=5)
    assert tried == [0, 1, -1, -2, -3] and rate == BASE / 8  # one finite trial is enough


def test_a_batch_so_large_that_every_rate_diverges_writes_no_model(toy, monkeypatch, capsys):
    searchable(monkeypatch)
    monkeypatch.chdir(toy)
    status = cli.main(["train", "--train", "train.txt", "--dev", "dev.txt", "--batch-size", "100000000",
                       "--max-epoch", "1", "--tensorboard", "tb", "big-i8-m8"])
    captured = capsys.readouterr()
    tried = re.findall(r"^  learning rate (\S+): development perplexity (\S+)$", captured.out, re.MULTILINE)
    assert status == 1 and len(tried) == 3 and all(perplexity == "inf" for _, perplexity in tried)
    assert captured.err.splitlines()[-1] == (
        "rwthlm-py: error: every trial of the learning-rate search diverged (3 rates, 6.2500e+04 to 2.5000e+05, "
        "scaled for --batch-size 100000000 and --sequence-length 36): give --learning-rate, or a smaller "
        "--batch-size")
    assert_one_line_error((status, captured.out, captured.err), "rwthlm-py", "every trial")
    assert "Training ..." not in captured.out
    assert not list(toy.glob("big-i8-m8*")) and not list(toy.glob(".big-i8-m8*"))


def test_a_batch_larger_than_a_trial_stops_before_any_trial(toy, monkeypatch, capsys):
    searchable(monkeypatch, trial_share=3)  # trials of a third of the epoch; one batch here is all of it
    monkeypatch.chdir(toy)
    status = cli.main(["train", "--train", "train.txt", "--dev", "dev.txt", "--batch-size", "100000000",
                       "--max-epoch", "1", "big-i8-m8"])
    captured = capsys.readouterr()
    assert_one_line_error((status, captured.out, captured.err), "rwthlm-py",
                          f"--batch-size 100000000: one batch holds {epoch_words(toy):,} training words, more than "
                          "a learning-rate trial may train on", "give --learning-rate, or a smaller --batch-size")
    assert "Searching the initial learning rate" not in captured.out and "trial 1 " not in captured.err
    assert not list(toy.glob("big-i8-m8*"))
