"""
# Measuring one call: its time, its peak memory, the fresh pages it needed

What `bench` records for every path: `timed` (wall time of one call, synchronized on CUDA),
`PeakMemory` (the peak extra memory during a block: CUDA's allocator, or the process's
sampled resident set on Linux) and `minor_faults` (the pages the kernel had to zero and map
for the process so far; their difference around a call counts that call's fresh pages).
"""

import gc
import os
import threading
import time

import torch

from .inference import reuse_freed_memory


class PeakMemory:
    """Peak extra memory during a block: CUDA's allocator, or the process's sampled RSS (Linux)."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_bytes = None

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        elif os.path.exists("/proc/self/statm"):
            reuse_freed_memory(False)  # trims the heap: the baseline holds no freed maps
            self.start = self._rss()
            self.peak = self.start
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self.start
        elif os.path.exists("/proc/self/statm"):
            self.running = False
            self.thread.join()
            self.peak_bytes = max(self.peak, self._rss()) - self.start
        return False

    @staticmethod
    def _rss():
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.0005)


def minor_faults():
    """Minor page faults of this process so far (pages the kernel had to map); None off Unix."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed(function, x, device):
    """Seconds of one call `function(x)`, the device synchronized before the clock stops."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    start = time.perf_counter()
    function(x)
    sync()
    return time.perf_counter() - start

