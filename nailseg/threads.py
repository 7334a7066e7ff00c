"""Thread-pool behaviour for a server whose processes share a few cores. Import before torch.

torch's OpenMP threads spin for a while after each parallel region, waiting for the next one. In a
benchmark that owns the machine that is free; here the runner's OpenVINO threads, the API worker
and the runner's own event loop need those cores, and on 2 cores the spinning cost the runner
~N ms of CPU per image at concurrency 32 (bench). ``OMP_WAIT_POLICY=PASSIVE`` makes idle OpenMP
threads sleep at once. libgomp reads it once, when torch loads it: so this module sets it (unless
the operator has) before anything imports torch.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
