"""Where the benchmark's runs execute: in this process one after another (:class:`InProcessExecutor`), as up to K
processes at once on this machine (:class:`LocalExecutor`, ``--jobs K``), or each as its own Slurm job
(:class:`SlurmExecutor`, ``--launcher slurm``). A run (:class:`Unit`: train + test of one config, or one model of
one fold of a fold preset) is a JSON spec that ``python -m mmseg_medical.benchmark.job SPEC`` executes; the
executors only start that command and watch it, the runner reads the finished run folders afterwards."""
from .base import POLL_S, Progress, Unit, now_iso, tail
from .local import InProcessExecutor, LocalExecutor
from .slurm import ACTIVE, SlurmExecutor, final_state, queue_states

__all__ = ['ACTIVE', 'POLL_S', 'InProcessExecutor', 'LocalExecutor', 'Progress', 'SlurmExecutor', 'Unit',
           'final_state', 'now_iso', 'queue_states', 'tail']
