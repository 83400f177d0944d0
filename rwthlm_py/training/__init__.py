"""Training: epochs with halving and rollback, the optimizer, dropout, the two
initial-learning-rate searches (rwthlm's, and one judged on held-out text), checkpoints
within an epoch, the lock on a model in training, and the gradient self-test."""
