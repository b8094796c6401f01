"""The consensus boundary: the types and protocols the replica talks to Raft through.

``protocol`` (Consensus, StateMachine, Events, LogStore, MetaStore), ``types`` (Role,
Failure, RaftStatus, RaftSettings, ...), ``repairs`` (pure log repairs), implementations in
``pysyncobj_backend`` (the real one; the only module importing pysyncobj, so it is not
imported here) and ``memory`` (a single-node fake for unit tests).
"""

from .protocol import Consensus, ConsensusFactory, Events, LogStore, MetaStore, StateMachine
from .types import (
    DEV_SECRET,
    DoneCallback,
    Failure,
    LogPosition,
    ProposalCallback,
    RaftSettings,
    RaftStatus,
    ReadIndex,
    ReadIndexCallback,
    Role,
    SnapshotMeta,
    seed_snapshot_meta,
)

__all__ = [
    "DEV_SECRET",
    "Consensus",
    "ConsensusFactory",
    "DoneCallback",
    "Events",
    "Failure",
    "LogPosition",
    "LogStore",
    "MetaStore",
    "ProposalCallback",
    "RaftSettings",
    "RaftStatus",
    "ReadIndex",
    "ReadIndexCallback",
    "Role",
    "SnapshotMeta",
    "StateMachine",
    "default_factory",
    "seed_snapshot_meta",
]


def default_factory() -> ConsensusFactory:
    """The factory a replica uses unless given one: pysyncobj (imported only now, so that
    importing the boundary does not load pysyncobj)."""
    from .pysyncobj_backend import pysyncobj_node

    return pysyncobj_node
