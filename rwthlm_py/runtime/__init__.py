"""Where the numbers are computed: the array backend (numpy or cupy) with its kernels'
dispatch, the CPU thread pool for row blocks, and the freed-memory cache of the GPU."""
