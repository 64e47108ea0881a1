"""What a step task knows about its place in the flow, fixed when the DAG is built.

Plain data: built by ``compile/``, read by the operators on the worker. No Airflow imports.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView, Mapping, Sequence, Set
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, overload

#: XCom key holding a step's ``OutcomeKind`` value (the step's result is ``return_value``).
OUTCOME_KEY = "openflow_outcome"
#: XCom key of a loop's items task holding the evaluated ``parallelism`` of a parallel loop.
PARALLELISM_KEY = "openflow_parallelism"
#: XCom key of an approval task holding ``{"resume", "resumes", "approvers"}`` for the next step.
RESUME_KEY = "openflow_resume"
#: XCom key holding the flow's status on the final task.
STATUS_KEY = "openflow_status"


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """Flow-level facts every step needs at run time."""

    dag_id: str
    schema: dict[str, Any] | None = None
    flow_env: dict[str, Any] = field(default_factory=dict)
    #: the task of the flow's preprocessor_module; when it ran, its result is the flow input
    preprocessor_task_id: str | None = None
    #: ``value.same_worker``: script steps share the run's ``./shared`` folder (runtime/shared_dir.py)
    same_worker: bool = False
    #: the flow's Windmill path (``f/folder/name``), e.g. for ``wmill.get_state``; "" if unknown
    path: str = ""
    #: the ``args`` of the flow's schedule file: the flow input of runs its schedule starts
    #: (scheduled and backfill runs); None when the DAG's schedule does not come from such a file
    schedule_args: dict[str, Any] | None = None
    #: what the UI calls the flow (its summary, else its path): approval requests name it
    name: str = ""


class Tail(Sequence[str]):
    """``ids[start:]`` of a tuple shared by many plans, without copying it.

    The tasks after step k of a flow are a suffix of one tuple (compile/flow.py), so a flow of n
    steps keeps n small views of one tuple of n ids rather than n tuples of up to n ids each.
    """

    __slots__ = ("_ids", "_start")

    def __init__(self, ids: tuple[str, ...] = (), start: int = 0) -> None:
        self._ids = ids
        self._start = min(max(start, 0), len(ids))

    @property
    def shared(self) -> tuple[str, ...]:
        """The whole tuple this is a tail of."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids) - self._start

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("Tail index out of range")
        return self._ids[self._start + index]

    def __iter__(self) -> Iterator[str]:
        return islice(self._ids, self._start, None)

    def __eq__(self, other: object) -> bool:  # equal to a tuple or list of the same ids, in order
        if isinstance(other, (Tail, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=False))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Tail({tuple(self)!r})"


class Prefix(Mapping[str, str]):
    """The first ``size`` entries of an append-only dict shared by many plans, without copying it.

    ``entries`` maps a key to ``(its position, its value)``; a key is in the prefix when its
    position is below ``size``. The steps before step k of a chain are a prefix of the chain's
    steps (compile/flow.py, compile/body.py): n steps keep n small views of one dict of n entries.
    ``keys()`` is the prefix as a set (``PrefixIds``).
    """

    __slots__ = ("_entries", "_size")

    def __init__(self, entries: Mapping[str, tuple[int, str]], size: int | None = None) -> None:
        self._entries = entries
        self._size = len(entries) if size is None else size

    @property
    def shared(self) -> Mapping[str, tuple[int, str]]:
        """The whole dict this is a prefix of."""
        return self._entries

    def keys(self) -> PrefixIds:
        return PrefixIds(self)

    def __getitem__(self, key: str) -> str:
        position, value = self._entries[key]
        if position >= self._size:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key) if isinstance(key, str) else None
        return entry is not None and entry[0] < self._size

    def __iter__(self) -> Iterator[str]:
        return islice(self._entries, self._size)  # insertion order is position order

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"Prefix({dict(self)!r})"


class PrefixIds(KeysView[str]):
    """The keys of a ``Prefix`` as a set: the step ids a step may read (``visible_step_ids``)."""

    __slots__ = ("_prefix",)

    def __init__(self, prefix: Prefix) -> None:
        super().__init__(prefix)
        self._prefix = prefix

    @property
    def prefix(self) -> Prefix:
        return self._prefix

    def __hash__(self) -> int:  # like the frozenset it replaces
        return self._hash()

    def __repr__(self) -> str:
        return f"PrefixIds({set(self)!r})"


@dataclass(frozen=True)
class StepPlan:
    step_id: str
    flow: FlowInfo
    #: the step whose result is ``previous_result``; None for the first step (the flow input)
    previous_step_id: str | None = None
    #: steps that have run before this one, so ``results.<id>`` may read them; any other id reads
    #: null, even if an older try of a later step left an XCom behind (Windmill: not yet run = null)
    visible_step_ids: Set[str] = frozenset()
    #: task ids to skip when this step stops the flow early (a ``Tail`` of one shared tuple)
    later_task_ids: Sequence[str] = ()
    #: set on the failure module: the top-level steps whose failure it handles; its
    #: ``previous_result`` is the failed step's result (the error object)
    handles_failure_of: tuple[str, ...] = ()
    #: set on the steps of a loop iteration or branch on tasks: step id -> task id of the body's
    #: steps that run before this one in the same iteration / branch (read at its own map index)
    iteration_task_ids: Mapping[str, str] | None = None
    #: a loop iteration's step (flow_input gets ``iter``); a branch's steps keep the run's input
    in_loop_iteration: bool = False
    #: the first step of a branchone branch on tasks: (the choosing task, this branch's index)
    branch_choice: tuple[str, int] | None = None
    #: for the collector of such a loop: the task evaluating the iterator, and the body's tasks
    items_task_id: str | None = None
    body_task_ids: tuple[str, ...] = ()
    #: the step right after an approval: the approval task, whose responses its expressions see
    #: as ``resume``, ``resumes`` and ``approvers`` (spec 6.2: that step only)
    resume_task_id: str | None = None
    #: a step with ``suspend``: its approval task, which ``wmill.get_resume_urls()`` links point at
    approval_task_id: str | None = None
