"""Which machine's history a command answers for, and which machines it shows beside: the one rule that
``choose``, ``compare``, ``history`` and ``report`` share.

The history holds runs of several machines, each run keyed by its machine's name (``meta.json``'s
``machine``: :func:`softgrad.history.provenance.machine_name`). A command answers for **this machine** by
default; where the history holds no run of it (a history copied from elsewhere, the nightly's branch read on
a laptop) it answers for the newest run's machine, saying so in one line (:attr:`Selection.note`) where the
history holds several (where it holds one, that one is the only answer there is, as before machines had names).
``--machine NAME`` answers for NAME; ``--machine all`` for every machine in turn, this one first. A name the
history does not hold is :class:`UnknownMachine`, one line naming those it does. The machines not answered
for are shown beside the answer, one line each (:attr:`Selection.others`). Timings of two machines are never
compared with each other: each answer comes from one machine's runs alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import provenance

#: what ``--machine`` takes for every machine
ALL = "all"


class UnknownMachine(ValueError):
    """A ``--machine`` the history holds no run of; the message is one line naming those it does."""


@dataclass(frozen=True)
class Selection:
    """The machines a command answers for (the first is the main answer's), those it shows beside, and a
    line saying why it answers for another machine than this one ("" when it does not)."""

    machines: tuple[str, ...]
    others: tuple[str, ...] = ()
    note: str = ""
    every: bool = False  # --machine all

    @property
    def machine(self) -> str | None:
        """The main answer's machine (None: the history holds none)."""
        return self.machines[0] if self.machines else None


def names(df) -> list[str]:
    """The machines of ``df`` (a frame with ``run`` and ``machine`` columns), the newest run's first."""
    if df is None or df.empty or "machine" not in df:
        return []
    last = df.groupby(df["machine"].fillna("").astype(str), sort=False)["run"].max()
    return [str(m) for m in last.sort_values(ascending=False, kind="stable").index]


def names_of_runs(machines_by_run: Iterable[tuple[str, str | None]]) -> list[str]:
    """The machines of ``(run id, machine)`` pairs, the newest run's first."""
    newest: dict[str, str] = {}
    for rid, machine in machines_by_run:
        key = machine if isinstance(machine, str) else ""
        newest[key] = max(newest.get(key, rid), rid)
    return sorted(newest, key=lambda m: newest[m], reverse=True)


def this_machine() -> str:
    """This machine's name (:func:`softgrad.history.provenance.machine_name`); a ``$SOFTGRAD_MACHINE`` that
    cannot name one raises :class:`~softgrad.history.provenance.MachineNameError`."""
    return provenance.machine_name()


def select(known: Sequence[str], asked: str | None = None, here: str | None = None) -> Selection:
    """The :class:`Selection` for ``--machine asked`` (None: this machine, ``here``, default
    :func:`this_machine`) over the machines ``known`` (the newest run's first, :func:`names`)."""
    known = list(dict.fromkeys(known))
    if asked == ALL:
        if not known:  # every machine of none: nothing to answer, which must not pass for an answer
            raise UnknownMachine(f"--machine {ALL}: the history holds no run of any machine")
        mine = here if here is not None else this_machine()
        ordered = sorted(known, key=lambda m: m != mine)  # this machine first, then the newest run's order
        return Selection(tuple(ordered), (), "", every=True)
    if asked is not None:
        if asked not in known:
            raise UnknownMachine(f"no stored run of machine {asked!r}: the history holds "
                                 f"{', '.join(repr(m) for m in known) or 'no run'} (--machine NAME|{ALL})")
        return Selection((asked,), tuple(m for m in known if m != asked))
    mine = here if here is not None else this_machine()
    if mine in known or not known:
        return Selection((mine,), tuple(m for m in known if m != mine))
    chosen = known[0]
    if len(known) == 1:
        return Selection((chosen,))
    note = (f"no stored run of this machine ({mine}): answering for {chosen}, the newest run's machine "
            f"(--machine NAME|{ALL}; the history holds {', '.join(known)})")
    return Selection((chosen,), tuple(known[1:]), note)


def rows(df, machine: str):
    """The rows of ``df`` timed on ``machine``."""
    return df[df["machine"].fillna("").astype(str) == machine]
