"""`TASKS`: every SFT task by name, as a recipe's `tasks:` mapping names them."""

from __future__ import annotations

from rlrec.tasks.alignment import ALIGNMENT_TASKS
from rlrec.tasks.query import QUERY_TASKS
from rlrec.tasks.sequential import SEQUENTIAL_TASKS
from rlrec.tasks.spec import TaskSpec

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (*SEQUENTIAL_TASKS, *ALIGNMENT_TASKS, *QUERY_TASKS)}
