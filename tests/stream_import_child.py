"""Child process of test_streaming_import_memory_is_bounded: a 1M-row streamed add_table."""

import os
import resource
import sys
import time

os.environ["LAKEVEC_AUTO_INDEX"] = "0"
import numpy as np
import pyarrow as pa

import lakevec

n, dim, batch = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def make(start, m):
    idx = np.arange(start, start + m)
    emb = np.random.default_rng(start).standard_normal((m, dim), dtype=np.float32)
    return pa.record_batch(
        {
            "id": pa.array(np.char.add("r", idx.astype(str))),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
            "year": pa.array(idx % 50),
        }
    )


col = lakevec.PersistentClient(sys.argv[1]).create_collection("stream", embedding_function=None)
col.add_table(pa.Table.from_batches([make(n + 1, batch)]))  # warm up every code path
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = pa.RecordBatchReader.from_batches(
    make(0, 1).schema, (make(s, min(batch, n - s)) for s in range(0, n, batch))
)
t = time.time()
rows = col.add_table(reader, batch_size=batch)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rows, col.count(), base // 1024, peak // 1024, round(time.time() - t, 1))
