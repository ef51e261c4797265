"""Running one bounded SIPp attack and reading what came back.

A `SippRun` is one `sipp` process: a scenario file of `theo_ray/bench/data/sipp/`, a call
count (`-m`), a rate (`-r`), a concurrency cap (`-l`), a source address (`-i`, any of
127.0.0.0/8 on Linux loopback) and SIPp's own global timeout; the process is also killed
when it outlives that timeout by a few seconds. SIPp's message trace (`-trace_msg`) is the
judge: `read_trace` counts the requests the attack started (distinct Call-IDs it sent a
first request for) and the final responses Theo sent, by code, each response counted once
per transaction (pjsip's retransmissions of one response are not new answers).

SIPp comes from the Debian package `sip-tester` (scripts/setup.sh installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from pathlib import Path

import msgspec

SCENARIOS = Path(__file__).resolve().parent / "data" / "sipp"


def sipp_path() -> str | None:
    """The `sipp` executable, or None when SIPp is not installed."""
    return shutil.which("sipp")


class SippRun(msgspec.Struct, frozen=True, kw_only=True):
    scenario: str  # file name in SCENARIOS
    calls: int  # -m: calls (scenario runs) in all
    rate: float  # -r: new calls per second
    source: str = "127.0.0.1"  # -i: the address SIPp sends from
    concurrent: int = 0  # -l: calls open at once (0: SIPp's default, 3 x rate x hold)
    hold_ms: int = 1000  # -d: the <pause/> of an answered call
    timeout_s: float = 30.0  # SIPp's -timeout; the process is killed 5 s after it
    keys: dict[str, str] = {}  # -key name value
    # SIPp's own BYE/CANCEL when a call ends unexpected ("-nd" turns them off: an attack
    # that never ACKs must not be tidied up by SIPp at its end).
    default_behaviors: bool = True


class SippResult(msgspec.Struct):
    scenario: str
    source: str
    started: int = 0  # distinct calls (Call-IDs) the attack opened with a request
    requests_sent: int = 0  # every request SIPp sent (re-INVITEs, ACKs, BYEs, retransmissions)
    finals: dict[str, int] = {}  # final response code -> calls, for each call's first request
    later: dict[str, int] = {}  # final responses to the calls' later requests (re-INVITE, BYE, CANCEL)
    unanswered: int = 0  # started calls that got no final response to their first request
    exit_code: int | None = None
    error: str = ""


_BLOCK = re.compile(r"^-{20,} .*$", re.MULTILINE)
_DIRECTION = re.compile(r"^\s*(\w+) message (sent|received)", re.MULTILINE)


def _header(message: str, name: str) -> str:
    for line in message.splitlines()[1:]:
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def read_trace(text: str, scenario: str = "", source: str = "") -> SippResult:
    """Count requests and final responses in a SIPp `-trace_msg` file."""
    result = SippResult(scenario=scenario, source=source)
    first_request: dict[str, str] = {}  # Call-ID -> CSeq of its first request
    answered: set[str] = set()
    seen: set[tuple[str, str, str, str]] = set()  # (Call-ID, CSeq, code, To tag)
    finals: dict[str, int] = {}
    later: dict[str, int] = {}
    for block in _BLOCK.split(text):
        direction = _DIRECTION.search(block)
        if direction is None:
            continue
        # The rest of the "... message sent (N bytes):" line, then the message itself.
        message = block[direction.end():].partition("\n")[2].lstrip("\r\n")
        start = message.split("\n", 1)[0].strip()
        call_id, cseq = _header(message, "call-id"), _header(message, "cseq")
        if direction.group(2) == "sent" and not start.startswith("SIP/2.0"):
            result.requests_sent += 1
            if call_id and call_id not in first_request:
                first_request[call_id] = cseq
            continue
        if direction.group(2) != "received" or not start.startswith("SIP/2.0 "):
            continue
        code = start.split()[1]
        if not code.isdigit() or int(code) < 200:
            continue
        to_tag = _header(message, "to").partition("tag=")[2]
        key = (call_id, cseq, code, to_tag)
        if key in seen:
            continue  # a retransmission of a response already counted
        seen.add(key)
        if first_request.get(call_id) == cseq and call_id not in answered:
            answered.add(call_id)
            finals[code] = finals.get(code, 0) + 1
        else:
            later[code] = later.get(code, 0) + 1
    result.started = len(first_request)
    result.finals = dict(sorted(finals.items()))
    result.later = dict(sorted(later.items()))
    result.unanswered = len(set(first_request) - answered)
    return result


async def run_sipp(run: SippRun, target: str, work_dir: Path, local_port: int, media_port: int) -> SippResult:
    """Run one attack against `target` ("host:port"); never raises for a failed attack."""
    exe = sipp_path()
    if exe is None:
        return SippResult(scenario=run.scenario, source=run.source, error="sipp is not installed (apt-get install sip-tester)")
    work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(run.scenario).stem}-{run.source}-{local_port}"
    trace, errors = work_dir / f"{stem}.msg.log", work_dir / f"{stem}.err.log"
    argv = [
        exe, target, "-sf", str(SCENARIOS / run.scenario), "-i", run.source, "-p", str(local_port),
        "-mp", str(media_port), "-m", str(run.calls), "-r", f"{run.rate:g}", "-d", str(run.hold_ms),
        "-timeout", f"{int(run.timeout_s)}s", "-timeout_error", "-recv_timeout", "15000",
        "-max_recv_loops", "10000", "-nostdin", "-trace_msg", "-message_file", str(trace),
        "-trace_err", "-error_file", str(errors),
    ]
    if run.concurrent:
        argv += ["-l", str(run.concurrent)]
    if not run.default_behaviors:
        argv.append("-nd")
    for key, value in run.keys.items():
        argv += ["-key", key, value]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        cwd=work_dir,
    )
    error = ""
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), run.timeout_s + 5.0)
        if process.returncode not in (0, 1):  # 1: some calls failed, which an attack expects
            error = f"sipp exited {process.returncode}: {stderr.decode(errors='replace').strip()[-300:]}"
    except TimeoutError:
        error = f"sipp still running {run.timeout_s + 5.0:.0f} s after its start: killed"
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    text = trace.read_text(errors="replace") if trace.exists() else ""
    result = read_trace(text, run.scenario, run.source)
    result.exit_code = process.returncode
    result.error = error
    return result
