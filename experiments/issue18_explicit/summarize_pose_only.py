"""One table over the ``probe_pose_only.py`` arms (experiments/issue18_explicit/pose_only/*.json):
held-out rotation / translation-direction medians at fixed steps, and the training batches'
rotation against identity's over windows of steps; the last evaluation by turn direction and on
still inputs where the JSONs have them. Prints Markdown and writes summary.md/json, and
summary.png (every arm's held-out rotation curve).

Usage: python experiments/issue18_explicit/summarize_pose_only.py [DIR] [--steps 100,300,...]
[--window 200] [--max-step N] [--arm NAME=OTHER.json ...]

``--max-step`` reads every arm only up to step N (an arm trained longer is compared at the steps
the others reached); ``--arm`` adds an arm from another folder (e.g. the control of an earlier
run with the same seed, schedule and tree of the pose-only step).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

#: Held-out checkpoints shown (the evaluation at exactly that step, "—" when the run had none),
#: and the last evaluation.
STEPS = (100, 300, 500, 1000, 1500, 2000)


def at_step(evals: list[dict[str, Any]], step: int) -> dict[str, Any] | None:
    done = [e for e in evals if e["step"] <= step]
    return done[-1] if done and done[-1]["step"] == step else None


def windows(rows: list[dict[str, Any]], size: int = 200) -> list[dict[str, Any]]:
    """Training-batch means over consecutive windows of ``size`` steps."""
    out = []
    last = rows[-1]["step"] if rows else 0
    for lo in range(0, last, size):
        chunk = [r for r in rows if lo < r["step"] <= lo + size]
        if not chunk:
            continue
        out.append(
            {
                "steps": f"{chunk[0]['step']}–{chunk[-1]['step']}",
                "term": statistics.mean(r["term"] for r in chunk),
                "rot": statistics.mean(r["rot_med"] for r in chunk),
                "identity_rot": statistics.mean(r["identity_rot_med"] for r in chunk),
                "rot_gain": statistics.mean(r["identity_rot_med"] - r["rot_med"] for r in chunk),
                "trans": statistics.mean(r["trans_med"] for r in chunk),
            }
        )
    return out


def plot_curves(arms: list[tuple[str, dict[str, Any]]], identity: float | None, out: Path) -> None:
    """Held-out median rotation error against the step, every arm on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in arms:
        ax.plot(
            [e["step"] for e in r["evals"]], [e["rot_med"] for e in r["evals"]], ".-", label=name
        )
    if identity is not None:
        ax.axhline(identity, color="k", ls=":", label="identity cameras")
    ax.set_xlabel("step (8 samples each)")
    ax.set_ylabel("held-out median rotation error (°)")
    ax.set_title("pose branch alone, trained on the true relative poses")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def truncated(r: dict[str, Any], max_step: int) -> dict[str, Any]:
    """The arm as it stood at ``max_step``: later evaluations and training rows dropped, the
    skipped updates counted up to its last logged step (CPU-s/step stays the whole run's)."""
    out = dict(r)
    out["evals"] = [e for e in r["evals"] if e["step"] <= max_step]
    out["train"] = [t for t in r["train"] if t["step"] <= max_step]
    out["steps"] = min(r["steps"], max_step)
    if out["train"] and "skipped_total" in out["train"][-1]:
        out["skipped_updates"] = out["train"][-1]["skipped_total"]
    return out


def main(
    folder: Path,
    steps: tuple[int, ...] = STEPS,
    window: int = 200,
    max_step: int | None = None,
    extra: dict[str, Path] | None = None,
) -> None:
    arms: list[tuple[str, dict[str, Any]]] = []
    named = [(name, path, True) for name, path in (extra or {}).items()]
    found = [(p.stem, p, False) for p in sorted(folder.glob("*.json"))]
    for name, path, asked in [*named, *found]:
        if not asked and path.name.startswith("summary"):
            continue
        r = json.loads(path.read_text())
        if "evals" not in r:  # e.g. orbit_sign_bound.json; an arm asked for by name must be one
            if asked:
                raise ValueError(f"--arm {name}={path}: not a probe_pose_only JSON (no evals)")
            continue
        if any(name == n for n, _ in arms):  # summary.json is keyed by name: one would be lost
            raise ValueError(f"two arms named {name!r} (an --arm and {path}): rename the --arm")
        arms.append((name, r if max_step is None else truncated(r, max_step)))
    lines = [
        "| arm | steps | CPU-s/step | skipped | "
        + " | ".join(f"held-out @{s}: rot / trans" for s in steps)
        + " | last: rot / trans, RPA@30, spread |",
        "|---|---|---|---|" + "---|" * len(steps) + "---|",
    ]
    identity = None
    summary: dict[str, Any] = {}
    for name, r in arms:
        evals = r["evals"]
        identity = evals[0]["identity_rot_med"]
        cells = []
        for s in steps:
            e = at_step(evals, s)
            cells.append("—" if e is None else f"{e['rot_med']:.2f}° / {e['trans_med']:.1f}°")
        last = evals[-1]
        lines.append(
            f"| {name} | {r['steps']} | {r['cpu_s_per_step']:.3f} | {r['skipped_updates']} | "
            + " | ".join(cells)
            + f" | {last['rot_med']:.2f}° / {last['trans_med']:.1f}°, "
            f"{last['rpa']['@30']:.2f}, {last['spread_deg']:.2f}° |"
        )
        summary[name] = {
            "windows": windows(r["train"], window),
            "last_eval": last,
            "steps": r["steps"],
        }
    lines.append("")
    lines.append(f"Identity on the held-out set: {identity:.2f}° rotation.")
    by_turn = [
        (n, s["last_eval"]) for n, s in summary.items() if "rot_med_by_turn" in s["last_eval"]
    ]
    if by_turn:
        # The turn split the probe recorded and the still-input control: a head that reads the
        # images gains on both turn directions and predicts no motion on still inputs. The split
        # depends on the probe's tree (f08802b), so the table says which one its counts are.
        lines += [
            "",
            "Last evaluation by the true turn direction, and on still inputs. The split is the "
            "one the probe recorded: before f08802b first vs last view (on the `even` set "
            "12 + / 20 −, scene 29 counted −), since then `rayzer.eval.turns` (13 + / 19 −).",
            "",
        ]
        lines.append(
            "| arm | step | turn + (scenes) | turn − (scenes) | still inputs: rot / trans |"
        )
        lines.append("|---|---|---|---|---|")
        for name, e in by_turn:
            t, n, still = e["rot_med_by_turn"], e["turns"], e["still_inputs"]
            lines.append(
                f"| {name} | {e['step']} | {t['plus']:.2f}° ({n['plus']}) | "
                f"{t['minus']:.2f}° ({n['minus']}) | "
                f"{still['rot_med']:.2f}° / {still['trans_med']:.1f}° |"
            )
    lines.append("")
    lines.append("Training batches (means over windows of the logged steps, every 10th):")
    lines.append("")
    lines.append(
        "| arm | steps | term | rotation median | identity's | identity − predicted | "
        "translation dir. median |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name, s in summary.items():
        for w in s["windows"]:
            lines.append(
                f"| {name} | {w['steps']} | {w['term']:.3f} | {w['rot']:.2f}° | "
                f"{w['identity_rot']:.2f}° | {w['rot_gain']:+.2f}° | {w['trans']:.1f}° |"
            )
    plot_curves(arms, identity, folder / "summary.png")
    text = "\n".join(lines) + "\n"
    (folder / "summary.md").write_text(text)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="experiments/issue18_explicit/pose_only")
    parser.add_argument("--steps", default=",".join(map(str, STEPS)), help="held-out columns")
    parser.add_argument("--window", type=int, default=200, help="training-batch window (steps)")
    parser.add_argument("--max-step", type=int, default=None, help="read every arm up to here")
    parser.add_argument(
        "--arm", action="append", default=[], metavar="NAME=JSON", help="an arm from elsewhere"
    )
    args = parser.parse_args()
    extra = {}
    for item in args.arm:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--arm wants NAME=JSON, got {item!r}")
        if name in extra:
            parser.error(f"--arm {name} given twice")
        extra[name] = Path(path)
    main(
        Path(args.folder),
        tuple(int(s) for s in args.steps.split(",")),
        args.window,
        args.max_step,
        extra,
    )
