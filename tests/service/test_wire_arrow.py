"""Arrow answers on the wire: written batch by batch (``encode_batches``) and read while the
chunks arrive (``read_stream``), whatever sizes the chunks come in."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stagent_lab.api import wire


def _table(n: int = 50_000) -> pa.Table:
    return pa.table({"i": list(range(n)), "label": [f"row {i}" for i in range(n)]})


def _stream(table: pa.Table, rows: int = 10_000) -> bytes:
    return b"".join(wire.encode_batches(table.schema, table.to_batches(max_chunksize=rows)))


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_batches_written_one_by_one_make_one_stream():
    table = _table()
    chunks = list(wire.encode_batches(table.schema, table.to_batches(max_chunksize=10_000)))
    assert len(chunks) == 6  # one per batch (the first with the schema), then the end marker
    read = pa.ipc.open_stream(b"".join(chunks))
    assert [b.num_rows for b in read] == [10_000] * 5
    assert pa.ipc.open_stream(b"".join(chunks)).read_all().equals(table)


@pytest.mark.parametrize("size", [1, 7, 4096, 1 << 20, 10 << 20])
def test_a_stream_reads_back_whatever_the_chunk_sizes(size):
    table = _table(3000 if size < 10 else 50_000)
    assert wire.read_stream(_pieces(_stream(table, 700), size)).equals(table)


def test_reading_goes_to_the_end_of_the_body():
    """The chunks after the end marker are read too (an HTTP connection is reusable only once
    its body was read to the end)."""
    data = _stream(_table(1000))
    consumed = []

    def chunks():
        for piece in _pieces(data, 100):
            consumed.append(len(piece))
            yield piece
        consumed.append("end")
        yield b""

    wire.read_stream(chunks())
    assert consumed[-1] == "end" and sum(c for c in consumed[:-1]) == len(data)


def test_an_error_while_reading_comes_out_unchanged():
    data = _stream(_table())

    class BrokeOff(Exception):
        pass

    def chunks():
        yield data[:5000]
        raise BrokeOff("peer closed connection")

    with pytest.raises(BrokeOff, match="peer closed"):
        wire.read_stream(chunks())
