"""The lattice search (rwthlm_py.rescoring.lattice_search) against independent oracles: a
brute-force enumeration of every path of small lattices scored through Network.log_probs,
a plain Viterbi search over the lattice's own scores, and the network's own log p of the
best path's words; batched and one-at-a-time evaluation give the same results (to float64
rounding: the products differ in shape)."""

import itertools
import math

import numpy
import pytest
from conftest import BACKENDS, make_backend

from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.htk_lattice import EPSILON, read_lattice
from rwthlm_py.rescoring.lattice_search import SearchOptions, look_ahead_scores, search
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.rescoring.scores import link_cost
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.text import data


def test_link_cost_is_the_scaled_scores_and_the_word_penalty_of_lm_scored_links():
    assert link_cost(-2.5, -1.25, True, 0.5, 8.0, 0.75) == 1.25 + 10.0 - 0.75
    assert link_cost(-2.5, 0.0, False, 0.5, 8.0, 0.75) == 1.25  # no LM score, no word penalty
    assert link_cost(-2.5, None, True, 0.5, 8.0, 0.75) == 1.25 - 0.75  # the search adds the LM term itself
    assert link_cost(-2.5, -1.25, True) == 2.5 + 1.25  # scales 1, no word penalty
    # bit for bit the sum as written, in its order: the search's printed costs depend on it
    rng = numpy.random.default_rng(3)
    for acoustic, lm, acoustic_scale, lm_scale, penalty in rng.uniform(-30, 30, (200, 5)).tolist():
        assert link_cost(acoustic, lm, True, acoustic_scale, lm_scale, penalty) == \
            -acoustic_scale * acoustic - lm_scale * lm - penalty


def random_lattice(tmp_path, vocab, seed, layers=4, width=3, tied=()):
    """A layered lattice: node 0, `layers` layers of up to `width` nodes 0.1 s apart, a last
    node reached over <sb> links; words from the vocabulary, some !NULL links with l=0 and
    some zero LM scores on words (noise), random acoustic and LM scores. The layers in
    `tied` (1 to `layers`) have the time of the layer before, so that links join nodes of
    one time frame."""
    rng = numpy.random.default_rng(seed)
    words = [vocab.words[k] for k in range(len(vocab)) if k != vocab.sb]
    sizes = [1] + [int(rng.integers(1, width + 1)) for _ in range(layers)]
    firsts = numpy.cumsum([0] + sizes)
    final = int(firsts[-1])
    layer_times = numpy.cumsum([0] + [0 if layer in tied else 1 for layer in range(1, layers + 2)]) / 10
    times = [round(float(layer_times[layer]), 2) for layer, size in enumerate(sizes) for _ in range(size)]
    times.append(round(float(layer_times[-1]), 2))
    links = []

    def link(start, end, word, lm):
        links.append((start, end, word, round(float(-rng.uniform(0.5, 3)), 2), lm))

    for layer in range(len(sizes) - 1):
        sources = range(firsts[layer], firsts[layer + 1])
        targets = list(range(firsts[layer + 1], firsts[layer + 2]))
        for target in targets:  # every node has an incoming link
            link(int(rng.choice(list(sources))), target, str(rng.choice(words)), round(float(-rng.uniform(0.1, 5)), 2))
        for source in sources:
            for target in rng.choice(targets, size=int(rng.integers(1, len(targets) + 1)), replace=False):
                kind = rng.uniform()
                if kind < 0.15:
                    link(int(source), int(target), EPSILON, 0.0)
                elif kind < 0.25:
                    link(int(source), int(target), str(rng.choice(words)), 0.0)
                else:
                    link(int(source), int(target), str(rng.choice(words)), round(float(-rng.uniform(0.1, 5)), 2))
    for source in range(firsts[-2], firsts[-1]):
        link(source, final, vocab.words[vocab.sb], round(float(-rng.uniform(0.1, 2)), 2))
    lines = [f"N={final + 1} L={len(links)}"] + [f"I={node} t={time:.2f}" for node, time in enumerate(times)]
    lines += [f"J={k} S={s} E={e} W={w} v=1 a={a} l={lm}" for k, (s, e, w, a, lm) in enumerate(links)]
    path = tmp_path / f"random{seed}.lat"
    path.write_text("\n".join(lines) + "\n")
    return read_lattice(path)


def link_words(lattice, vocab):
    """The network's word of each LM-scored link, -1 for the others (as the lattice command gives them)."""
    return [vocab.index[link.word] if link.lm != 0 else -1 for link in lattice.links]


def all_paths(lattice, topology):
    """Every path from node 0 to the final node, as link lists."""
    paths, stack = [], [(0, [])]
    while stack:
        node, path = stack.pop()
        if node == topology.final:
            paths.append(path)
            continue
        for link_id in topology.outgoing[node]:
            stack.append((lattice.links[link_id].end, path + [link_id]))
    return paths


def sentence_log_probs(network, words):
    """ln p of each word of `words` after <sb> (no final <sb> added), by Network.log_probs."""
    stream = numpy.array(words, dtype=numpy.int32)
    context = numpy.array([network.vocab.sb] + list(words[:-1]), dtype=numpy.int32)
    batch = data.make_batch(stream, context, numpy.array([0]), numpy.array([len(words)]))
    return network.backend.to_numpy(network.log_probs(batch)[0])


def path_cost(network, lattice, path, words, options):
    """A path's cost by the formula of lattice_search's docstring, written out again."""
    scored = [link_id for link_id in path if lattice.links[link_id].lm != 0]
    nn = sentence_log_probs(network, [words[k] for k in scored]) if scored else []
    nn_of = dict(zip(scored, nn, strict=True))
    cost = 0.0
    for link_id in path:
        link = lattice.links[link_id]
        cost -= options.acoustic_scale * link.acoustic
        if link.lm != 0 and options.combination == "loglinear":
            cost += -options.lm_scale * (link.lm + options.lam * nn_of[link_id]) - options.word_penalty
        elif link.lm != 0:
            p = options.lam * math.exp(nn_of[link_id]) + (1 - options.lam) * math.exp(link.lm)
            cost += -options.lm_scale * math.log(p) - options.word_penalty
    return cost


@pytest.fixture(scope="module")
def network():
    from rwthlm_py.text.vocabulary import remap

    vocab = remap([(f"w{k}", k % 4) for k in range(9)], "<sb>")
    network = Network.build(parse_network("t-i6-m5"), vocab, get_backend("numpy", "float64"), seed=4)
    for value in network.named_params().values():
        value *= 15  # far from uniform: p(w | history) depends on the history
    return network


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("look_ahead", ["none", "tropical", "log"])
@pytest.mark.parametrize("combination", ["linear", "loglinear"])
def test_an_infinite_beam_finds_the_best_of_all_paths(tmp_path, network, seed, look_ahead, combination):
    lattice = random_lattice(tmp_path, network.vocab, seed)
    topology = lattice_topology(lattice)
    words = link_words(lattice, network.vocab)
    options = SearchOptions(lam=0.7, dp_order=50, lm_scale=2.5, look_ahead=look_ahead, acoustic_scale=0.9,
                            word_penalty=0.3, combination=combination)
    result = search(network, lattice, topology, words, options)
    costs = {tuple(path): path_cost(network, lattice, path, words, options) for path in all_paths(lattice, topology)}
    best = min(costs, key=costs.get)
    assert result.cost == pytest.approx(costs[best], abs=1e-9)
    assert costs[tuple(result.best_links)] == pytest.approx(costs[best], abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tied", [(1,), (2, 3), (1, 2, 3, 4)])
def test_links_within_a_time_frame_find_the_best_of_all_paths(tmp_path, network, seed, tied):
    """Nodes of one time reached over links from nodes of the same time (the frame is
    expanded in segments, each after the network steps of the one before): still the best
    of all paths, batched or one history at a time."""
    lattice = random_lattice(tmp_path, network.vocab, seed, layers=5, tied=tied)
    topology = lattice_topology(lattice)
    words = link_words(lattice, network.vocab)
    costs = None
    for batch_size in (None, 1):
        options = SearchOptions(lam=0.6, dp_order=50, lm_scale=2.0, word_penalty=0.2, batch_size=batch_size)
        result = search(network, lattice, topology, words, options)
        costs = costs or {tuple(path): path_cost(network, lattice, path, words, options)
                          for path in all_paths(lattice, topology)}
        best = min(costs, key=costs.get)
        assert result.cost == pytest.approx(costs[best], abs=1e-9)
        assert costs[tuple(result.best_links)] == pytest.approx(costs[best], abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_without_the_network_the_best_path_is_the_viterbi_path_of_the_lattice(tmp_path, network, seed):
    lattice = random_lattice(tmp_path, network.vocab, seed, layers=6)
    topology = lattice_topology(lattice)
    result = search(network, lattice, topology, link_words(lattice, network.vocab),
                    SearchOptions(lam=0.0, lm_scale=3.0, dp_order=2))
    best = numpy.full(len(lattice.nodes), math.inf)
    best[0] = 0.0
    into = [None] * len(lattice.nodes)
    for node in topology.order:
        for link_id in topology.outgoing[node]:
            link = lattice.links[link_id]
            cost = best[node] - link.acoustic - 3.0 * link.lm
            if cost < best[link.end]:
                best[link.end], into[link.end] = cost, link_id
    path, node = [], topology.final
    while node != 0:
        path.append(into[node])
        node = lattice.links[into[node]].start
    assert result.cost == pytest.approx(best[topology.final], abs=1e-9)
    assert result.best_links == path[::-1]


@pytest.mark.parametrize("seed", range(4))
def test_the_best_paths_new_lm_scores_are_the_networks_log_probs(tmp_path, network, seed):
    lattice = random_lattice(tmp_path, network.vocab, seed)
    words = link_words(lattice, network.vocab)
    result = search(network, lattice, lattice_topology(lattice), words, SearchOptions(lam=1.0, dp_order=50))
    scored = [k for k in result.best_links if lattice.links[k].lm != 0]
    expected = sentence_log_probs(network, [words[k] for k in scored])
    assert [result.link_lm[k] for k in scored] == pytest.approx(list(expected), abs=1e-12)
    assert all(result.link_lm[k] == 0.0 for k in result.best_links if lattice.links[k].lm == 0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beam, limit", [(0.0, 0), (15.0, 0), (8.0, 2)])
def test_batched_and_one_at_a_time_give_the_same_results(tmp_path, network, seed, beam, limit):
    lattice = random_lattice(tmp_path, network.vocab, seed, layers=6, width=4)
    topology = lattice_topology(lattice)
    words = link_words(lattice, network.vocab)
    results = [search(network, lattice, topology, words,
                      SearchOptions(lam=0.5, beam=beam, limit=limit, dp_order=2, look_ahead="tropical",
                                    batch_size=batch_size))
               for batch_size in (None, 1, 3)]
    for other in results[1:]:  # the products' shapes differ: equal to float64 rounding
        assert other.cost == pytest.approx(results[0].cost, abs=1e-12)
        assert other.best_links == results[0].best_links
        assert [value is None for value in other.link_lm] == [value is None for value in results[0].link_lm]
        assert [v for v in other.link_lm if v is not None] == pytest.approx(
            [v for v in results[0].link_lm if v is not None], abs=1e-12)
        assert other.pruning_lines == results[0].pruning_lines
    assert results[0].network_steps == results[1].network_steps


def test_recombination_keeps_one_hypothesis_per_word_history(tmp_path, network):
    """Two words, then the same word: with dp_order 1 the two histories end in the same
    word and merge at the next frame; with dp_order 2 they stay apart."""
    text = ("N=5 L=5\nI=0 t=0\nI=1 t=0.1\nI=2 t=0.2\nI=3 t=0.3\nI=4 t=0.4\n"
            "J=0 S=0 E=1 W=w1 a=-1 l=-1\nJ=1 S=0 E=1 W=w2 a=-2 l=-1\nJ=2 S=1 E=2 W=w3 a=-1 l=-1\n"
            "J=3 S=2 E=3 W=w4 a=-1 l=-1\nJ=4 S=3 E=4 W=<sb> a=-1 l=-1\n")
    path = tmp_path / "merge.lat"
    path.write_text(text)
    lattice = read_lattice(path)
    topology = lattice_topology(lattice)
    words = link_words(lattice, network.vocab)
    lines = {order: search(network, lattice, topology, words, SearchOptions(lam=1.0, dp_order=order)).pruning_lines
             for order in (1, 2)}
    assert lines[1][1] == "t=20 #hyps/#nodes: 2/1 (min: 2, max: 2) -> 1 (min: 1, max: 1)"
    assert lines[2][1] == "t=20 #hyps/#nodes: 2/1 (min: 2, max: 2) -> 2 (min: 2, max: 2)"
    assert all(itertools.starmap(lambda a, b: a.startswith(b[:5]), zip(lines[1], lines[2], strict=True)))


PRUNED_LATTICE = ("N=5 L=7\nI=0 t=0\nI=1 t=0.1\nI=2 t=0.1\nI=3 t=0.2\nI=4 t=0.3\n"
                  "J=0 S=0 E=1 W=w1 a=-1 l=-1\nJ=1 S=0 E=1 W=w2 a=-3 l=-1\nJ=2 S=0 E=1 W=w3 a=-10 l=-1\n"
                  "J=3 S=0 E=2 W=w4 a=-20 l=-1\nJ=4 S=1 E=3 W=w5 a=-1 l=-1\nJ=5 S=2 E=3 W=w5 a=-1 l=-1\n"
                  "J=6 S=3 E=4 W=<sb> a=-1 l=-1\n")


@pytest.mark.parametrize("beam, limit, line, survivors", [
    # costs at t=10 (lambda 0, lm-scale 1: -a - l): node 1 via w1 2, w2 4, w3 11; node 2 via w4 21
    (3.0, 0, "t=10 #hyps/#nodes: 4/2 (min: 1, max: 3) -> 3 (min: 1, max: 2)", [0, 1, 3]),  # 11 > 2 + 3 goes;
    (0.0, 1, "t=10 #hyps/#nodes: 4/2 (min: 1, max: 3) -> 2 (min: 1, max: 1)", [0, 3]),     # 21 is node 2's best
    (0.0, 2, "t=10 #hyps/#nodes: 4/2 (min: 1, max: 3) -> 3 (min: 1, max: 2)", [0, 1, 3]),
    (9.5, 0, "t=10 #hyps/#nodes: 4/2 (min: 1, max: 3) -> 4 (min: 1, max: 3)", [0, 1, 2, 3]),
])
def test_the_beam_and_the_limit_keep_the_best_and_each_nodes_best(tmp_path, network, beam, limit, line, survivors):
    """The beam keeps what is within `beam` of the frame's best, and every node's best; the
    limit keeps each node's best `limit`; the next frame is reached from the survivors only."""
    path = tmp_path / "pruned.lat"
    path.write_text(PRUNED_LATTICE)
    lattice = read_lattice(path)
    result = search(network, lattice, lattice_topology(lattice), link_words(lattice, network.vocab),
                    SearchOptions(lam=0.0, beam=beam, limit=limit, dp_order=1))
    assert result.pruning_lines[0] == line
    traceback = result.traceback
    reaching_node_3 = [traceback.link[traceback.predecessor[entry]] for entry in range(len(traceback.link))
                       if traceback.node[entry] == 3]
    assert sorted(reaching_node_3) == survivors
    assert result.cost == pytest.approx(2 + 2 + 2)  # w1 w5 <sb>


@pytest.mark.parametrize("words", [["w1", "w5", "w2"], ["w3"], ["w8", "w8", "w0", "w4", "w6"]])
def test_a_linear_lattice_scores_a_sentence_as_perplexity_and_nbest_do(tmp_path, network, words):
    """The invariant of the design: ln p(sentence) by `ppl`'s path (Network.log_probs), by
    n-best rescoring (score_sentences) and by a lattice spelling it (lambda 1, no acoustic
    score) agree."""
    from rwthlm_py.rescoring.sentence_scores import score_sentences, sentence_log_prob

    vocab = network.vocab
    spelled = words + ["<sb>"]
    lines = [f"N={len(spelled) + 1} L={len(spelled)}"] + [f"I={k} t={k / 10:.2f}" for k in range(len(spelled) + 1)]
    lines += [f"J={k} S={k} E={k + 1} W={word} a=0 l=-1" for k, word in enumerate(spelled)]
    path = tmp_path / "linear.lat"
    path.write_text("\n".join(lines) + "\n")
    lattice = read_lattice(path)
    result = search(network, lattice, lattice_topology(lattice), link_words(lattice, vocab),
                    SearchOptions(lam=1.0, beam=5.0, dp_order=3))
    ids = [vocab.index[word] for word in words]
    ppl = sentence_log_probs(network, ids + [vocab.sb]).sum()
    nbest = sentence_log_prob(score_sentences(network, [ids], batch_size=4)[0])
    assert -result.cost == pytest.approx(ppl, abs=1e-12)
    assert -result.cost == pytest.approx(nbest, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_the_distinct_best_paths_of_an_expanded_lattice_are_those_of_all_its_paths(tmp_path, network, seed):
    """With a beam and recombination, so that pruned hypotheses lead to older nodes."""
    from rwthlm_py.rescoring.lattice_expansion import distinct_best_paths, expand

    lattice = random_lattice(tmp_path, network.vocab, seed, layers=5, width=3)
    topology = lattice_topology(lattice)
    result = search(network, lattice, topology, link_words(lattice, network.vocab),
                    SearchOptions(lam=0.5, beam=6.0, dp_order=1))
    times, links = expand(result, topology)
    edges = [(link.start, link.end) for link in links]
    costs = [0.0 if link.link is None else -lattice.links[link.link].acoustic - link.lm_log_prob for link in links]

    def words_of(path):
        return [lattice.links[links[k].link].word for k in path if links[k].link is not None]

    best_of = {}
    stack = [(0, (), 0.0)]
    while stack:
        node, path, cost = stack.pop()
        if node == len(times) - 1:
            words = tuple(words_of(path))
            best_of[words] = min(best_of.get(words, math.inf), cost)
            continue
        stack += [(end, path + (k,), cost + costs[k]) for k, (start, end) in enumerate(edges) if start == node]
    expected = sorted(best_of.values())[:6]
    found = distinct_best_paths(len(times), edges, costs, words_of, 6)
    assert [cost for cost, _ in found] == pytest.approx(expected, abs=1e-9)
    assert len({tuple(words_of(path)) for _, path in found}) == len(found)


def test_a_pruned_hypothesis_may_lead_to_an_older_node_of_the_expanded_lattice(tmp_path, network):
    """w2 w3 w5 reaches node 4 after w1 w5 was made, ends in the same word and is
    recombined into it: its expanded link leads back to an older node id, and both word
    sequences still come out, best first."""
    from rwthlm_py.rescoring.lattice_expansion import distinct_best_paths, expand

    text = ("N=6 L=6\nI=0 t=0\nI=1 t=0.1\nI=2 t=0.2\nI=3 t=0.3\nI=4 t=0.5\nI=5 t=0.6\n"
            "J=0 S=0 E=1 W=w1 a=-1 l=-1\nJ=1 S=0 E=2 W=w2 a=-1 l=-1\nJ=2 S=1 E=4 W=w5 a=-1 l=-1\n"
            "J=3 S=2 E=3 W=w3 a=-1 l=-1\nJ=4 S=3 E=4 W=w5 a=-30 l=-1\nJ=5 S=4 E=5 W=<sb> a=-1 l=-1\n")
    path = tmp_path / "older.lat"
    path.write_text(text)
    lattice = read_lattice(path)
    topology = lattice_topology(lattice)
    result = search(network, lattice, topology, link_words(lattice, network.vocab), SearchOptions(lam=1.0, dp_order=1))
    times, links = expand(result, topology)
    assert any(link.start > link.end for link in links)
    costs = [0.0 if link.link is None else -lattice.links[link.link].acoustic - link.lm_log_prob for link in links]

    def words_of(path):
        return [lattice.links[links[k].link].word for k in path if links[k].link is not None]

    found = distinct_best_paths(len(times), [(link.start, link.end) for link in links], costs, words_of, 5)
    assert [words_of(path) for _, path in found] == [["w1", "w5", "<sb>"], ["w2", "w3", "w5", "<sb>"]]


@pytest.mark.parametrize("device", BACKENDS[1:])
def test_the_search_on_the_device_equals_numpy(tmp_path, network, device):
    on_device = Network(network.spec, network.vocab, make_backend(device, "float64"), network.bias)
    for name, value in on_device.named_params().items():
        value[...] = on_device.backend.asarray(network.named_params()[name])
    lattice = random_lattice(tmp_path, network.vocab, 3, layers=6, width=4)
    topology = lattice_topology(lattice)
    words = link_words(lattice, network.vocab)
    options = SearchOptions(lam=0.5, beam=10.0, dp_order=2, look_ahead="log")
    expected, got = (search(net, lattice, topology, words, options) for net in (network, on_device))
    assert got.best_links == expected.best_links and got.pruning_lines == expected.pruning_lines
    assert got.cost == pytest.approx(expected.cost, abs=1e-10)


def test_the_look_ahead_scales_the_acoustic_scores(tmp_path):
    """From the first node of the hand lattice (tests/test_lattice_outputs.py) the cheapest
    way on costs 0.5 a + l = 35.5 (the cat and the dog sees </s> alike), 65.5 unscaled."""
    from conftest import HAND_LATTICE

    (tmp_path / "hand.lat").write_text(HAND_LATTICE)
    lattice = read_lattice(tmp_path / "hand.lat")
    topology = lattice_topology(lattice)
    assert look_ahead_scores(lattice, topology, "tropical", 1.0, 0.5)[0] == pytest.approx(35.5, abs=1e-12)
    assert look_ahead_scores(lattice, topology, "tropical", 1.0)[0] == pytest.approx(65.5, abs=1e-12)
