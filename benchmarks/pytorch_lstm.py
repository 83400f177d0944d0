"""PyTorch's CPU nn.LSTM language model, timed like benchmarks/run.py times rwthlm_py.

Run by run.py in a separate process (so that PyTorch's threads do not disturb numpy's).
It builds the model, warms up, then answers every line `time` on stdin with the seconds of
one timed repeat, so that run.py can interleave PyTorch's repeats with its own and compare
them under the same conditions. PyTorch is an optional benchmark dependency only.
"""

import argparse
import sys
import time

import torch
from common import MODELS, zipf_stream


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--mode", choices=("train", "score"), required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--vocab", type=int, required=True)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    hidden, layers = MODELS[args.model]
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(args.vocab, hidden)
    lstm = torch.nn.LSTM(hidden, hidden, num_layers=layers)
    output = torch.nn.Linear(hidden, args.vocab)
    parameters = list(embedding.parameters()) + list(lstm.parameters()) + list(output.parameters())
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    stream = torch.from_numpy(zipf_stream(args.vocab, (args.seq + 1) * args.batch * args.batches).astype("int64"))
    data = stream.view(args.batches, args.seq + 1, args.batch)

    def train():
        for k in range(args.batches):
            optimizer.zero_grad()
            hidden_states, _ = lstm(embedding(data[k, :-1]))
            loss = torch.nn.functional.cross_entropy(output(hidden_states).view(-1, args.vocab),
                                                     data[k, 1:].reshape(-1))
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def score():
        for k in range(args.batches):
            hidden_states, _ = lstm(embedding(data[k, :-1]))
            log_probs = torch.log_softmax(output(hidden_states), dim=-1)
            log_probs.gather(-1, data[k, 1:].unsqueeze(-1)).sum().item()

    work = train if args.mode == "train" else score
    for _ in range(2):
        work()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "time":
            break
        start = time.perf_counter()
        work()
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    main()
