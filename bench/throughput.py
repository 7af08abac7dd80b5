"""Throughput benchmark: the writer against the limits of this machine, measured in one run.

A simulated camera in another process sends frames as fast as the writer takes them. In the
same run the benchmark measures what the machine allows: ZeroMQ loopback throughput of the
same frames (same sender, a receiver that only counts) and sequential disk write with fsync of
as many bytes as the writer writes (plain, and with the writer's write-behind: the faster
counts). The last line is::

    ratio=R writer_GBps=X limit_GBps=Y lost=N peak_rss_MB=M fps=F ratio_comp=C

with R = X / Y and Y the smaller of the two limits. With ``--compression`` the disk has to
take only 1/C of the bytes (C = raw bytes / bytes stored in the frames dataset), so the limit
is the smaller of ZMQ loopback and disk x C; X counts raw (uncompressed) bytes. The writer's
time runs from its first frame until the file is closed and fsync'ed, so the page cache
flatters neither side.

    python bench/throughput.py                      # pco.edge 2560x2160 uint16
    python bench/throughput.py --shape 64 250       # small frames: per-frame overhead
    python bench/throughput.py --compression bitshuffle-lz4 --frames 400
    python bench/throughput.py --frames 200 --no-swmr   # the HDF5 1.8 format, no SWMR
    python bench/throughput.py --shape 64 250 --writers 2   # two writer processes (ADR 0042)
    python bench/throughput.py --page-open 3        # the same, status page open vs closed

With ``--page-open N`` it measures something else: N pairs of runs through a control server
and a writer process, one of each pair with the status page open (``/overview``,
``/preview``, ``/metrics`` polled), and prints ``page_ratio=open/closed`` (bench/_page_load.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from pco_writer._malloc import tune_for_streaming
from pco_writer.buffer import FrameBuffer
from pco_writer.h5._writeback import WriteBehind
from pco_writer.names import COMPRESSIONS
from pco_writer.receiver import Receiver, ReceiverSettings
from pco_writer.settings import AcquisitionSettings
from pco_writer.writer import MultiWriter, Writer

GB = 1e9


def main() -> None:
    args = _parse()
    if args.page_open:
        from _page_load import page_comparison

        page_comparison(args, _start_sender, _free_port)
        return
    tune_for_streaming()  # as `pco-writer write` does
    frame_bytes = int(np.prod(args.shape)) * np.dtype(args.dtype).itemsize
    n = args.frames or _default_frames(frame_bytes)
    workdir = Path(tempfile.mkdtemp(prefix="pco-bench-", dir=args.dir))
    compressed = args.compression != "none"
    try:
        _print(f"frames: {n} x {args.shape} {args.dtype} = {n * frame_bytes / GB:.2f} GB")
        _print("warm-up: disk and writer, untimed ...")
        _disk_limit(workdir / "disk.bin", n * frame_bytes, frame_bytes)
        _run_writer(args, max(20, n // 10), workdir / "warmup.h5")
        (workdir / "warmup.h5").unlink()
        _print("writer run ...")
        writer = _run_writer(args, n, workdir / "bench.h5")
        peak_rss_mb = writer["peak_rss_bytes"] / (1 << 20)  # the largest writer process, MiB
        (workdir / "bench.h5").unlink()
        _print("same receiver and ring, frames written with plain pwrite (no HDF5) ...")
        pipeline_gbps = _bare_pipeline(args, n, workdir / "bare.bin") if not compressed else 0.0
        _print("ZMQ loopback limit ...")
        zmq_gbps = _zmq_limit(args, min(n, max(20, int(4 * GB // frame_bytes))), frame_bytes)
        _print("disk limit ...")
        disk_gbps = _disk_limit(workdir / "disk.bin", n * frame_bytes, frame_bytes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio_comp = writer["ratio_comp"]
    limit = min(zmq_gbps, disk_gbps * (ratio_comp if args.compression != "none" else 1.0))
    _print(f"zmq_GBps={zmq_gbps:.3f} disk_GBps={disk_gbps:.3f} "
           f"buffer_peak_MB={writer['buffer_peak_bytes'] / 1e6:.0f}"
           + (f" bare_pipeline_GBps={pipeline_gbps:.3f}" if pipeline_gbps else ""))  # fmt: skip
    print(
        f"ratio={writer['GBps'] / limit:.3f} writer_GBps={writer['GBps']:.3f} "
        f"limit_GBps={limit:.3f} lost={writer['lost']} peak_rss_MB={peak_rss_mb:.0f} "
        f"fps={writer['fps']:.0f} ratio_comp={ratio_comp:.3f} swmr={int(args.swmr)} "
        f"writers={args.writers}",
        flush=True,
    )


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--shape", type=int, nargs="+", default=[2160, 2560])
    p.add_argument("--dtype", default="uint16")
    p.add_argument("--frames", type=int, default=0, help="default: ~8 GB or 150k frames")
    p.add_argument("--buffer-bytes", type=int, default=1 << 30)
    p.add_argument("--dir", default=None, help="where to write (default: the temp folder)")
    p.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    p.add_argument("--compression", default="none", choices=COMPRESSIONS)
    p.add_argument("--compression-threads", type=int, default=0, help="0 = one per core")
    p.add_argument("--no-swmr", dest="swmr", action="store_false", help="write the HDF5 1.8 format")
    p.add_argument("--writers", type=int, default=1,
                   help="writer processes sharing the acquisition (ADR 0042)")  # fmt: skip
    p.add_argument(
        "--page-open",
        type=int,
        default=0,
        metavar="PAIRS",
        help="compare runs with the status page open and closed, PAIRS of each",
    )
    return p.parse_args()


def _default_frames(frame_bytes: int) -> int:
    return int(min(8 * GB // frame_bytes, 150_000))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_sender(args: argparse.Namespace, frames: int) -> tuple[subprocess.Popen[bytes], str]:
    port = args.port or _free_port()
    address = f"tcp://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "pco_writer.cli", "simulate", "--bind", address,
        "--shape", *map(str, args.shape), "--dtype", args.dtype, "--frames", str(frames),
        "--start-frame", "1000",
    ]  # fmt: skip
    return subprocess.Popen(cmd, stderr=subprocess.DEVNULL), address


def _run_writer(args: argparse.Namespace, frames: int, path: Path) -> dict[str, float]:
    sender, address = _start_sender(args, frames)
    try:
        settings = AcquisitionSettings(
            connect=address, output=str(path), n_frames=frames, buffer_bytes=args.buffer_bytes,
            compression=args.compression, compression_threads=args.compression_threads,
            swmr=args.swmr, n_writers=args.writers,
        )  # fmt: skip
        writer = MultiWriter(settings) if args.writers > 1 else Writer(settings)
        writer.start()
        t_started = time.monotonic()  # several writers: their first frames come about now
        if not writer.wait(600):
            writer.kill()
            raise SystemExit("writer did not finish within 600 s")
        _fsync(path)
        t_end = time.monotonic()
    finally:
        sender.wait(30)
    stats = writer.statistics()
    t_first = writer.receiver.stats.t_first if isinstance(writer, Writer) else t_started
    elapsed = t_end - t_first
    written = stats["n_written_frames"]
    frame_bytes = int(np.prod(args.shape)) * np.dtype(args.dtype).itemsize
    return {
        "GBps": written * frame_bytes / elapsed / GB,
        "fps": written / elapsed,
        "lost": frames - written,
        "buffer_peak_bytes": stats["buffer_peak_bytes"],
        "peak_rss_bytes": stats["peak_rss_bytes"],
        "ratio_comp": written * frame_bytes / max(_stored_bytes(path), 1),
    }


def _bare_pipeline(args: argparse.Namespace, frames: int, path: Path) -> float:
    """The writer's receiver and ring, with each frame ``pwrite``-n to a plain file instead.

    Not part of the ratio: it tells how much of the gap to the limit is HDF5's and how much
    is the receive path sharing the cores with the sender and the disk writes.
    """
    sender, address = _start_sender(args, frames)
    buffer = FrameBuffer(args.buffer_bytes)
    receiver = Receiver(ReceiverSettings(address), buffer)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    behind = WriteBehind(fd)
    try:
        receiver.start()
        written, n, t0 = 0, 0, 0.0
        while n < frames and not buffer.drained:
            batch = buffer.get_batch(64, 0.2, 0.005)
            for f in batch:
                t0 = t0 or time.monotonic()
                os.pwrite(fd, f.data[: f.nbytes], written)
                written += f.nbytes
                behind.advance()
            n += len(batch)
            buffer.release(batch)
        os.fsync(fd)
        elapsed = time.monotonic() - t0
    finally:
        receiver.stop()
        receiver.join(10)
        os.close(fd)
        path.unlink()
        sender.wait(30)
    return written / elapsed / GB


def _stored_bytes(path: Path) -> int:
    """Bytes the frames take in the file (their chunks, compressed or not)."""
    import h5py

    with h5py.File(path, "r") as f:
        data = f["exchange/data"]
        if not data.is_virtual:
            return int(data.id.get_storage_size())
        sources = {(m.file_name, m.dset_name) for m in data.virtual_sources()}
    total = 0
    for name, dset in sources:  # several writers: the frames are in their part files
        with h5py.File(path.parent / name, "r") as part:
            total += int(part[dset].id.get_storage_size())
    return total


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _zmq_limit(args: argparse.Namespace, frames: int, frame_bytes: int) -> float:
    """The same sender into a PULL socket that only counts."""
    sender, address = _start_sender(args, frames)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, 8)
    sock.connect(address)
    try:
        got, t0 = 0, 0.0
        while got < frames:
            if not sock.poll(30_000):
                raise SystemExit("ZMQ limit: sender stopped sending")
            parts = sock.recv_multipart(copy=False)
            if got == 0:
                t0 = time.monotonic()
            got += 1
            del parts
        elapsed = time.monotonic() - t0
    finally:
        sock.close(linger=0)
        ctx.term()
        sender.wait(30)
    return (frames - 1) * frame_bytes / elapsed / GB


def _disk_limit(path: Path, nbytes: int, block: int) -> float:
    """The faster of two sequential writes of ``nbytes`` in frame-sized blocks, then fsync.

    One is plain buffered writing; the other hands each window to the disk at once and drops
    it from the page cache (what the writer does), which on this VM is several times faster.
    Taking the faster keeps the limit honest: the writer is compared with the best the disk
    did, not with a slow way of writing.
    """
    plain = _timed_write(path, nbytes, block, write_behind=False)
    behind = _timed_write(path, nbytes, block, write_behind=True)
    _print(f"disk: plain {plain:.3f} GB/s, write-behind {behind:.3f} GB/s")
    return max(plain, behind)


def _timed_write(path: Path, nbytes: int, block: int, write_behind: bool) -> float:
    data = np.random.default_rng(0).integers(0, 4000, block // 2, dtype=np.uint16).tobytes()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    behind = WriteBehind(fd) if write_behind else None
    try:
        t0 = time.monotonic()
        written = 0
        while written < nbytes:
            written += os.write(fd, data)
            if behind is not None:
                behind.advance()
        os.fsync(fd)
        elapsed = time.monotonic() - t0
    finally:
        os.close(fd)
        path.unlink()
    return written / elapsed / GB


def _print(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
