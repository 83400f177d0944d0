"""What a run shows and leaves: the console's lines and progress, TensorBoard events, the
run record, and the staging folders of outputs written whole."""
