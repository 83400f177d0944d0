"""NVRTC, CUDA's run-time compiler, through ctypes: compiles a CUDA source to PTX without a
GPU or a driver, so that kernel sources are checked on any machine with the library.

The library comes from the `nvidia-cuda-nvrtc-cu12` wheel (the `nvrtc` extra installs it on
x86-64 Linux) or from a CUDA installation on the library path.
"""

import ctypes
import ctypes.util
import glob
import importlib.util
import os

SUCCESS = 0


def find_library():
    """The path or name of libnvrtc, or None with no NVRTC on this machine."""
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
    except ModuleNotFoundError:  # no `nvidia` package at all: the nvrtc extra is not installed
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            found = sorted(glob.glob(os.path.join(location, "lib", "libnvrtc.so*")))
            found = [path for path in found if ".alt." not in path]
            if found:
                return found[0]
    return ctypes.util.find_library("nvrtc")


def load():
    path = find_library()
    return None if path is None else ctypes.CDLL(path)


def compile_to_ptx(library, source, name, options):
    """(ok, log, ptx) of compiling `source` with the given NVRTC options."""
    program = ctypes.c_void_p()
    status = library.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0, None, None)
    if status != SUCCESS:
        raise RuntimeError(f"nvrtcCreateProgram failed with status {status}")
    try:
        encoded = [option.encode() for option in options]
        array = (ctypes.c_char_p * len(encoded))(*encoded)
        status = library.nvrtcCompileProgram(program, len(encoded), array)
        log_size = ctypes.c_size_t()
        library.nvrtcGetProgramLogSize(program, ctypes.byref(log_size))
        log = ctypes.create_string_buffer(log_size.value)
        library.nvrtcGetProgramLog(program, log)
        ptx = b""
        if status == SUCCESS:
            ptx_size = ctypes.c_size_t()
            library.nvrtcGetPTXSize(program, ctypes.byref(ptx_size))
            buffer = ctypes.create_string_buffer(ptx_size.value)
            library.nvrtcGetPTX(program, buffer)
            ptx = buffer.value
        return status == SUCCESS, log.value.decode(errors="replace"), ptx.decode(errors="replace")
    finally:
        library.nvrtcDestroyProgram(ctypes.byref(program))
