#!/usr/bin/env python3
"""Mutation testing of the conformance suite: how many realistic porting bugs does it catch?

Each mutant in mutants.json is a one-line change of the kind a port introduces (a skipped K
remainder block, a wrong panel offset, a dropped rescale, a reversed tie rule, ...). One at a
time, in a scratch worktree of HEAD, the harness applies it, rebuilds, and asks three judges:

  conform  `polychip conform --device D --kernel K --level standard` (what CI runs) fails;
  tests    `swift test --filter S` fails (only for mutants conform missed, unless --all-judges);
  bench    `polychip bench --device D --kernel K` at the benchmarked shape: its verification of
           the timed call fails. Whether the mutant changes that call's output at all is read
           from the output digest against the unmutated build (a mutant whose bug the
           benchmarked shape never reaches is "not reached", not a miss).

Usage: scripts/mutation/run.py [--only ID[,ID]] [--json OUT] [--markdown OUT] [--all-judges]
       [--scratch DIR] [--keep]
Standard library only. Needs the same system packages as the project (hwloc, numa, OpenCL/PoCL).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sh(cmd, cwd, timeout, env=None):
    """Runs a command; returns (exit status or 'timeout', seconds, tail of the output)."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           env={**os.environ, **(env or {})})
        out = p.stdout.decode("utf-8", "replace")
        return p.returncode, time.time() - t0, out[-4000:]
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        return "timeout", time.time() - t0, out[-4000:]


def apply(scratch, m, revert=False):
    path = os.path.join(scratch, m["file"])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    old, new = (m["replace"], m["find"]) if revert else (m["find"], m["replace"])
    count = text.count(old)
    if count != 1:
        raise SystemExit(f"mutant {m['id']}: {m['file']} holds the text to {'restore' if revert else 'replace'} {count} times (need 1)")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))


def conform(scratch, m, binary):
    cmd = [binary, "conform", "--device", m["device"], "--level", "standard", "--json", "/tmp/polychip-mutant-conform.json"]
    for k in m["kernels"]:
        cmd += ["--kernel", k]
    for d in m.get("dtypes", []):
        cmd += ["--dtype", d]
    cmd += m.get("args", [])  # e.g. --set overrides that put a simulated device on the mutated path
    status, secs, out = sh(cmd, scratch, m.get("timeout", 1800), env=m.get("env"))
    failed = 0
    try:
        with open("/tmp/polychip-mutant-conform.json") as f:
            failed = sum(1 for r in json.load(f) if r.get("status") in ("fail", "xpass"))
    except (OSError, ValueError):
        pass
    caught = status != 0
    return {"caught": caught, "status": status, "seconds": round(secs, 1), "failedCases": failed,
            "detail": "" if caught else out[-300:]}


def tests(scratch, m):
    cmd = ["swift", "test"]
    for f in m.get("tests", []):
        cmd += ["--filter", f]
    status, secs, out = sh(cmd, scratch, 3600)
    return {"caught": status != 0, "status": status, "seconds": round(secs, 1)}


def bench(scratch, m, binary):
    """The benchmarked shape's row: its verification and its output digest."""
    if not m.get("bench"):
        return None
    cmd = [binary, "bench", "--device", m["device"], "--kernel", m["bench"], "--min-time", "0.001", "--json"]
    status, secs, out = sh(cmd, scratch, m.get("timeout", 1800), env=m.get("env"))
    try:
        # Progress lines ("[1/1] …") go to stderr, which sh() folds in: parse from the line "[".
        start = out.index("\n[\n") + 1 if not out.startswith("[\n") else 0
        rows = json.loads(out[start:out.rindex("]") + 1])
        row = rows[0]
    except (ValueError, IndexError):
        return {"verified": f"no result ({status})", "digest": None, "seconds": round(secs, 1)}
    return {"verified": row.get("verified", ""), "digest": row.get("outputDigest"), "seconds": round(secs, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--markdown", help="write a markdown table here")
    ap.add_argument("--all-judges", action="store_true", help="run the tests even for mutants conform caught")
    ap.add_argument("--scratch", default="/tmp/polychip-mutation", help="scratch worktree (reused across runs)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch worktree afterwards")
    args = ap.parse_args()

    with open(os.path.join(ROOT, "scripts", "mutation", "mutants.json"), encoding="utf-8") as f:
        mutants = json.load(f)["mutants"]
    if args.only:
        wanted = set(args.only.split(","))
        mutants = [m for m in mutants if m["id"] in wanted]

    scratch = args.scratch
    if not os.path.isdir(os.path.join(scratch, ".git")) and not os.path.isfile(os.path.join(scratch, ".git")):
        subprocess.run(["git", "worktree", "add", "--detach", scratch, "HEAD"], cwd=ROOT, check=True)
    else:
        subprocess.run(["git", "checkout", "--detach", "--force", subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT).decode().strip()],
                       cwd=scratch, check=True)
    binary = os.path.join(scratch, ".build", "debug", "polychip")

    def build():
        return sh(["swift", "build", "--product", "polychip"], scratch, 3600)

    status, secs, out = build()
    if status != 0:
        raise SystemExit("baseline build failed:\n" + out)
    # Baseline digests of the benchmarked calls (the unmutated code).
    baseline = {}
    for m in mutants:
        key = (m["device"], m.get("bench"), json.dumps(m.get("env", {}), sort_keys=True))
        if m.get("bench") and key not in baseline:
            baseline[key] = bench(scratch, m, binary)
            print(f"baseline bench {m['bench']} on {m['device']}: {baseline[key]['verified']}", flush=True)

    results = []
    for m in mutants:
        print(f"== {m['id']}: {m['description']}", flush=True)
        apply(scratch, m)
        try:
            status, secs, out = build()
            r = {"id": m["id"], "file": m["file"], "description": m["description"], "category": m["category"],
                 "device": m["device"], "buildSeconds": round(secs, 1)}
            if m.get("reach"):
                r["reach"] = m["reach"]
            if status != 0:
                r["error"] = "does not build: " + out[-500:]
                results.append(r)
                print("   does not build", flush=True)
                continue
            r["conform"] = conform(scratch, m, binary)
            if args.all_judges or not r["conform"]["caught"]:
                r["tests"] = tests(scratch, m) if m.get("tests") else None
            b = bench(scratch, m, binary)
            if b is not None:
                base = baseline[(m["device"], m.get("bench"), json.dumps(m.get("env", {}), sort_keys=True))]
                b["changesOutput"] = b["digest"] is None or b["digest"] != base["digest"]
                b["caught"] = not b["verified"].startswith("yes")
                r["bench"] = b
            results.append(r)
            t = r.get("tests")
            print(f"   conform {'CAUGHT' if r['conform']['caught'] else 'missed'} ({r['conform']['failedCases']} cases)"
                  + (f", tests {'CAUGHT' if t and t['caught'] else 'missed'}" if "tests" in r else "")
                  + (f", bench {b['verified'][:60]} (output {'changed' if b['changesOutput'] else 'unchanged'})" if b else ""), flush=True)
        finally:
            apply(scratch, m, revert=True)

    valid = [r for r in results if "error" not in r]
    by_conform = sum(1 for r in valid if r["conform"]["caught"])
    by_either = sum(1 for r in valid if r["conform"]["caught"] or (r.get("tests") or {}).get("caught"))
    benched = [r for r in valid if r.get("bench") and r["bench"]["changesOutput"]]
    bench_caught = sum(1 for r in benched if r["bench"]["caught"])
    # Mutants in code no bundled device's conformance run executes ("reach" says why) are
    # judged by the tests; the conform score is also given over the mutants it can reach.
    reachable = [r for r in valid if not r.get("reach")]
    by_conform_reachable = sum(1 for r in reachable if r["conform"]["caught"])
    summary = {"mutants": len(valid), "invalid": len(results) - len(valid),
               "conformScore": by_conform / max(1, len(valid)), "conformOrTestsScore": by_either / max(1, len(valid)),
               "conformReachable": len(reachable), "conformScoreReachable": by_conform_reachable / max(1, len(reachable)),
               "benchChangedOutput": len(benched), "benchCaught": bench_caught,
               "commit": subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=scratch).decode().strip()}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "results": results}, f, indent=1)
    if args.markdown:
        lines = ["| mutant | where | conform (standard) | tests | bench verification at the benchmarked shape |", "|---|---|---|---|---|"]
        for r in results:
            if "error" in r:
                lines.append(f"| {r['id']} | {r['file']} | invalid: {r['error'][:80]} | | |")
                continue
            c = r["conform"]
            t = r.get("tests")
            b = r.get("bench")
            tests_cell = "-" if "tests" not in r else ("not run" if t is None else ("caught" if t["caught"] else "**missed**"))
            bench_cell = "-" if not b else (("caught" if b["caught"] else "**missed**") if b["changesOutput"] else "output unchanged")
            conform_cell = "caught" if c["caught"] else ("not reached¹" if r.get("reach") else "**missed**")
            lines.append(f"| {r['id']}: {r['description']} | `{r['file']}` | {conform_cell} "
                         f"({c['failedCases']} cases) | {tests_cell} | {bench_cell} |")
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if not args.keep:
        subprocess.run(["git", "worktree", "remove", "--force", scratch], cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
