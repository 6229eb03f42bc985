"""Contains the shape of the benchmark's tables: names, declarations, keys.

Each row has two integer keys, a varchar and a 1 KiB blob, and five part rows.
The tables are declared in plain SQL, which DataJoint 0.14 (the older tool) and
DataJoint 2 both read. This module imports nothing heavy, so that the raw copy's
process stays as small as a raw copy needs to be.
"""

from __future__ import annotations

CLASS_NAME = "BenchRow"
MASTER = "bench_row"
PART = "bench_row__sample"
HELPER_CLASS = "BenchRowOutbound"
HELPER_TABLE = "bench_row_outbound"
PARTS_PER_ROW = 5
BLOB_BYTES = 1024
ROWS_PER_GROUP = 1000
FILL_CHUNK = 1000
"""Rows per INSERT while filling: about 1.1 MB per statement."""

MASTER_DDL = """
CREATE TABLE `{schema}`.`bench_row` (
  `group_id` int NOT NULL COMMENT 'first key',
  `row_id` int NOT NULL COMMENT 'second key',
  `label` varchar(64) NOT NULL COMMENT 'a short text',
  `payload` longblob NOT NULL COMMENT 'a packed array of 1 KiB',
  PRIMARY KEY (`group_id`, `row_id`)
) ENGINE=InnoDB COMMENT='rows pulled by the benchmark'
"""

PART_DDL = """
CREATE TABLE `{schema}`.`bench_row__sample` (
  `group_id` int NOT NULL COMMENT 'first key',
  `row_id` int NOT NULL COMMENT 'second key',
  `sample_idx` tinyint unsigned NOT NULL COMMENT 'index within the row',
  `value` double NOT NULL COMMENT 'a number',
  PRIMARY KEY (`group_id`, `row_id`, `sample_idx`),
  FOREIGN KEY (`group_id`, `row_id`) REFERENCES `{schema}`.`bench_row`
    (`group_id`, `row_id`) ON UPDATE CASCADE ON DELETE RESTRICT
) ENGINE=InnoDB COMMENT='part rows of the benchmark rows'
"""


def key_of(index: int) -> tuple[int, int]:
    """Return the primary key of the row with this index."""
    return index // ROWS_PER_GROUP, index % ROWS_PER_GROUP
