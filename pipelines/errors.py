"""Telling the server's faults from the client's: is a failure an allocation failure?

Kept apart from ``pipelines.preprocess`` so that the detector stubs, which need only this, do
not import DALI (about 65 MiB of resident memory per process).
"""

from __future__ import annotations

__all__ = ["is_out_of_memory"]

# How torch (torch.cuda.OutOfMemoryError), CUDA and DALI's allocators word running out of memory.
_OUT_OF_MEMORY = ("out of memory", "bad_alloc", "allocation failed", "cudaerrormemoryallocation")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure of torch, CUDA or DALI (not a bad input)."""
    text = str(error).lower()
    return any(words in text for words in _OUT_OF_MEMORY)
