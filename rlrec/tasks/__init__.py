"""SFT tasks: each turns a prepared dataset and its SID index into chat examples (prompt / completion).

`TaskContext.build(dataset, index)` computes what the tasks share; `TASKS` names them; `build_mixture`
draws a weighted, shuffled mixture for TRL's `SFTTrainer`; `mixture_summary` counts it per task.
"""

from rlrec.tasks.context import TaskContext
from rlrec.tasks.mixture import build_mixture, mixture_summary, plan_counts
from rlrec.tasks.registry import TASKS
from rlrec.tasks.spec import TaskSpec, chat_row

__all__ = ["TASKS", "TaskContext", "TaskSpec", "build_mixture", "chat_row", "mixture_summary", "plan_counts"]
