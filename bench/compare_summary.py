#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/compare_summary.py - the tables of bench/compare-qemu.sh.

  compare_summary.py --csv compare.csv --out DIR --configs "C ..."
                     --rates "R ..." --data "D ..." --limit MS --title TEXT

Reads the per-run CSV; writes DIR/compare-summary.csv (per data mode, rate
and configuration over the completed runs: medians of the heartbeat
downtime, the VMM's own downtime, total time and MiB on the wire, and
completed/runs, and the guest's own stall at the switch), DIR/plot.dat (for gnuplot) and DIR/compare.md: one table
per data mode (cells "downtime ms / total ms / MiB") and the ratios vmm/QEMU
of the same run: our pre-copy against QEMU's pre-copy at the same limit, our
hybrid against QEMU's post-copy, and our best against QEMU's best (each
figure's best configuration on its own; a configuration counts only where
it completed).
"""
import argparse
import csv
import statistics


def num(s):
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=1):
    if v is None:
        return "-"
    return f"{v:.{nd}f}" if abs(v) < 100 else f"{v:.0f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def summarize(rows, opts):
    groups = {}
    for r in rows:
        groups.setdefault((r["data"], r["rate_mib_s"], r["config"]), []).append(r)
    summary = {}
    for key, grp in groups.items():
        done = [r for r in grp if r["state"] == "completed"]
        summary[key] = {
            "runs": len(grp),
            "completed": len(done),
            "states": "+".join(sorted({r["state"] for r in grp})),
            "dt": med(num(r["downtime_hb_ms"]) for r in done),
            "own": med(num(r["downtime_own_ms"]) for r in done),
            "guest": med(num(r.get("downtime_guest_ms")) for r in done),
            "total": med(num(r["total_time_ms"]) for r in done),
            "mib": med(num(r["wire_mib"]) for r in done),
            "postcopy": sum(r["postcopy"] == "true" for r in done),
            "pre_gap": med(num(r["pre_gap_ms"]) for r in grp),
            "foreign": med(num(r["foreign"]) for r in grp),
        }
    return summary


def best(summary, d, r, cfgs, key):
    cands = [(summary[(d, r, c)][key], c) for c in cfgs
             if (d, r, c) in summary and summary[(d, r, c)][key] is not None]
    return min(cands) if cands else (None, "-")


def write_md(summary, opts, f):
    cfgs, rates, data = opts.configs.split(), opts.rates.split(), opts.data.split()
    qemu = [c for c in cfgs if c.startswith("qemu")]
    vmm = [c for c in cfgs if c.startswith("vmm")]
    print(f"### QEMU and vmm on the same guest image ({opts.title})\n", file=f)
    print("Cells: downtime from the heartbeats (ms) [the guest's own stall at the switch, "
          "ms] / total time (ms) / MiB on the wire, medians of the completed runs; "
          "`x` = did not complete (state).\n", file=f)
    for d in data:
        print(f"**data {d}**\n", file=f)
        print("| config | " + " | ".join(f"{r} MiB/s" for r in rates) + " |", file=f)
        print("|---|" + "---|" * len(rates), file=f)
        for c in cfgs:
            cells = []
            for r in rates:
                s = summary.get((d, r, c))
                if not s:
                    cells.append("")
                elif not s["completed"]:
                    cells.append(f"x ({s['states']})")
                else:
                    cell = (f"{fmt(s['dt'])} [{fmt(s['guest'])}] / {fmt(s['total'], 0)} / "
                            f"{fmt(s['mib'], 0)}")
                    if s["completed"] < s["runs"]:
                        cell += f" ({s['completed']}/{s['runs']})"
                    cells.append(cell)
            print(f"| {c} | " + " | ".join(cells) + " |", file=f)
        print("", file=f)
        floor = {v: med(s["pre_gap"] for (dd, _, c), s in summary.items()
                        if dd == d and c.startswith(v)) for v in ("qemu", "vmm")}
        print(f"Noise floor (the largest heartbeat gap in the second before the migration, "
              f"median of the runs): QEMU runs {fmt(floor['qemu'])} ms, vmm runs "
              f"{fmt(floor['vmm'])} ms.\n", file=f)
    pairs = [("vmm-precopy", f"qemu-pre-{opts.limit}"), ("vmm-hybrid", "qemu-post")]
    print("**Ratios vmm/QEMU** (below 1: vmm better), downtime / total time / bytes:\n",
          file=f)
    head = [f"{a} / {b}" for a, b in pairs if a in cfgs and b in cfgs]
    print("| data | rate | " + " | ".join(head) +
          " | best vmm / best QEMU: downtime | guest stall | total time | bytes |", file=f)
    print("|---|---|" + "---|" * (len(head) + 4), file=f)
    for d in data:
        for r in rates:
            cells = []
            for a, b in pairs:
                if a not in cfgs or b not in cfgs:
                    continue
                sa, sb = summary.get((d, r, a)), summary.get((d, r, b))
                if not sa or not sb:
                    cells.append("-")
                    continue
                cells.append(" / ".join(ratio(sa[k], sb[k]) for k in ("dt", "total", "mib")))
            for k in ("dt", "guest", "total", "mib"):
                bv, bc = best(summary, d, r, vmm, k)
                qv, qc = best(summary, d, r, qemu, k)
                cells.append(f"{ratio(bv, qv)} ({bc} {fmt(bv)} vs {qc} {fmt(qv)})")
            print(f"| {d} | {r} | " + " | ".join(cells) + " |", file=f)
    print("", file=f)


def main():
    ap = argparse.ArgumentParser()
    for a in ("csv", "out", "configs", "rates", "data", "limit", "title"):
        ap.add_argument("--" + a, required=True)
    opts = ap.parse_args()
    with open(opts.csv, newline="") as f:
        rows = list(csv.DictReader(f))
    summary = summarize(rows, opts)
    rates = opts.rates.split()
    with open(f"{opts.out}/compare-summary.csv", "w") as f:
        print("data,rate_mib_s,config,runs,completed,states,downtime_hb_ms,downtime_own_ms,"
              "total_time_ms,wire_mib,postcopy,pre_gap_ms,foreign,downtime_guest_ms", file=f)
        for (d, r, c), s in sorted(summary.items()):
            print(",".join(str(x) for x in (d, r, c, s["runs"], s["completed"], s["states"],
                                            fmt(s["dt"], 3), fmt(s["own"], 3), fmt(s["total"], 0),
                                            fmt(s["mib"], 1), s["postcopy"],
                                            fmt(s["pre_gap"], 3), fmt(s["foreign"], 1),
                                            fmt(s["guest"], 3))), file=f)
    with open(f"{opts.out}/plot.dat", "w") as f:
        for (d, r, c), s in sorted(summary.items()):
            pos = rates.index(r) if r in rates else 0
            vals = ["NaN" if s[k] is None else f"{s[k]:.3f}" for k in ("dt", "total", "mib")]
            print(d, c, r, pos, *vals, file=f)
    with open(f"{opts.out}/compare.md", "w") as f:
        write_md(summary, opts, f)


if __name__ == "__main__":
    main()
