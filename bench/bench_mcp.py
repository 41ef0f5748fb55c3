"""Per-call latency of a skill through `git kavi serve mcp` vs. `git kavi run-skill`.

Both run the same TRUSTED `write_note` on the same forge, interleaved in one run (so load
affects both alike), and both do the whole governed run: ledger lookup, registry check,
source hash, runtime policy, input validation, the skill in a confined child process,
output validation, redaction, run record. The MCP figure is one `tools/call` as the
official MCP Python client sees it (stdio, the server started once and kept warm: it
starts the next call's confined worker while it waits); the baseline is one
`git kavi run-skill` process. Goal: ≤ 1.0.

    python bench/bench_mcp.py [--runs 21]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import bench_env, promoted_forge


async def measure(repo: Path, env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    cli = [sys.executable, "-m", "kavi", "run-skill", "write_note", "--json"]
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "kavi", "serve", "mcp"], cwd=str(repo), env=env
    )
    mcp_times: list[float] = []
    cli_times: list[float] = []
    async with (
        stdio_client(server) as (read, write),
        ClientSession(read, write, client_info=types.Implementation(name="bench", version="1")) as session,
    ):
        await session.initialize()
        await session.list_tools()
        for i in range(runs + 2):  # two warm-up rounds
            args: dict[str, Any] = {"path": f"Inbox/bench/{i}.md", "title": "Bench", "body": "x" * 200}
            start = time.perf_counter()
            result = await session.call_tool("write_note", args)
            took = time.perf_counter() - start
            if result.is_error:
                raise SystemExit(f"the MCP call failed: {result.content[0].text}")
            args["path"] = f"Inbox/bench/cli-{i}.md"
            start = time.perf_counter()
            await anyio.to_thread.run_sync(
                lambda a=args: subprocess.run(
                    [*cli, json.dumps(a)], cwd=repo, env=env, check=True, capture_output=True
                )
            )
            cli_took = time.perf_counter() - start
            if i >= 2:
                mcp_times.append(took)
                cli_times.append(cli_took)
            await anyio.sleep(0.05)  # a pause, as between an agent's calls
    return mcp_times, cli_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-mcp-"))
    env = bench_env(root)
    try:
        repo = promoted_forge(root, env)
        mcp_times, cli_times = anyio.run(measure, repo, env, args.runs)
        ours, base = statistics.median(mcp_times), statistics.median(cli_times)
        print(f"baseline  git kavi run-skill write_note (one process)     : {base * 1000:7.1f} ms")
        print(f"kavi      tools/call write_note via git kavi serve mcp   : {ours * 1000:7.1f} ms")
        print(f"ratio mcp / run-skill = {ours / base:.2f}x   (goal <= 1.0x, median of {args.runs})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
