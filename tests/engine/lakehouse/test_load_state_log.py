"""A checkpoint never drops the load state.

The state (files landed, last cursor) is in the metadata of the commit that landed the data. When Delta writes a
checkpoint it may delete the log files older than `delta.logRetentionDuration` (30 days): the commit holding the
state could be among them, and the next run would land every file again. Bronze tables keep their whole log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake

from foundation.engine.lakehouse.bronze import KEEP_LOG, BronzeTable

CSV = "id,value\n1,10\n2,20\n"
OLD = time.time() - 40 * 86400  # older than the 30 days of delta.logRetentionDuration


def _age_log(uri: str) -> None:
    log = Path(uri) / "_delta_log"
    for name in os.listdir(log):
        os.utime(log / name, (OLD, OLD))


def _checkpoint_then_clean(uri: str) -> None:
    """What 100 commits and 30 days do: a checkpoint, then a commit whose post-commit hook writes the next checkpoint
    and cleans the log older than the retention (a checkpoint every commit here, instead of every 100)."""
    DeltaTable(uri).alter.set_table_properties({"delta.checkpointInterval": "1"})
    _age_log(uri)
    DeltaTable(uri).create_checkpoint()
    _age_log(uri)
    hooks = PostCommitHookProperties(create_checkpoint=True)  # the table's own cleanup setting decides
    write_deltalake(uri, pa.table({"unrelated": [1]}), mode="append", schema_mode="merge",
                    post_commithook_properties=hooks)  # fmt: skip


def test_the_load_state_survives_a_checkpoint_and_log_cleanup(make_workspace, spec) -> None:
    kit = make_workspace(
        sources=[spec("readings", {"type": "csv", "path": "landing/*.csv"})],
        files={"landing/a.csv": CSV},
    )
    assert kit.ingest("readings").rows_landed == 2
    uri = kit.bronze_uri("readings")
    _checkpoint_then_clean(uri)
    assert (Path(uri) / "_delta_log" / "00000000000000000000.json").exists()  # the load's commit is kept
    assert BronzeTable(uri).state().files  # so is the state it holds
    assert kit.ingest("readings").status == "nothing_new"
    assert kit.count("readings") == 3  # 2 loaded + the unrelated commit's row: nothing landed twice


def test_a_table_made_before_keeps_its_log_from_its_next_write(tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    write_deltalake(uri, pa.table({"a": [1]}))  # as tables were written before this setting
    assert DeltaTable(uri).metadata().configuration == {}
    BronzeTable(uri).append_rows(pa.table({"a": [2]}))
    assert DeltaTable(uri).metadata().configuration.items() >= KEEP_LOG.items()
