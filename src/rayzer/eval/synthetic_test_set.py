"""A fixed, held-out test set of built-in synthetic scenes for novel-view evaluation.

Scenes are the first ``num_scenes`` seeds of :data:`rayzer.data.synthetic.TEST_SEEDS` (disjoint
from every training seed), rendered with the training run's :class:`SynthConfig` (same family,
clip length, image size and generator options), so the test is in-distribution but unseen.
Each scene gives one sample of V = Vi + Vt views taken from a window of ``span`` frames with
the protocols of :mod:`rayzer.data.protocols`:

* ``even``: V frames evenly spaced over the centred window; targets at evenly spaced interior
  positions (no randomness);
* ``random``: the window ends plus V − 2 random interior frames, random interior targets, from a
  generator seeded by ``(seed, scene name)``.

Both window ends are context views, so targets are interpolated. Everything is deterministic.
:func:`gt_rotation_stats` measures how much the cameras of a sample rotate — the set is only a
test of pose learning if that is large (median ≥ 15° on the default benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rayzer.data.protocols import PROTOCOLS, ViewSplit, even_split, random_split
from rayzer.data.synthetic import TEST_SEEDS, SynthConfig, render_clip
from rayzer.eval.novel_view import EvalSample
from rayzer.geometry import relative_pose_errors


def scene_name(family: str, seed: int) -> str:
    """Name of a synthetic test scene (also keys the ``random`` protocol's generator)."""
    return f"synth_{family}_{seed}"


def protocol_split(
    protocol: str,
    num_frames: int,
    num_input: int,
    num_target: int,
    span: int,
    seed: int,
    scene: str,
) -> ViewSplit:
    """The context / target frames of one scene under ``protocol`` (``even`` or ``random``)."""
    if protocol == "even":
        split = even_split(num_frames, num_input, num_target, span)
    elif protocol == "random":
        split = random_split(num_frames, num_input, num_target, seed=seed, scene=scene, span=span)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if split is None:  # cannot happen for synthetic clips once span <= frames is checked
        raise ValueError(
            f"{scene}: {num_frames} frames are too few for {num_input + num_target} views"
        )
    return split


def synthetic_test_sets(
    synth: SynthConfig,
    num_scenes: int,
    num_input: int,
    num_target: int,
    *,
    span: int | None = None,
    protocols: Sequence[str] = PROTOCOLS,
    seed: int = 0,
    first: int = 0,
) -> dict[str, list[EvalSample]]:
    """Build the test samples of every protocol, rendering each scene's frames once.

    Args:
        synth: clip configuration (family, frames per clip, size, options) of the training data.
        num_scenes: scenes taken from ``TEST_SEEDS[first:first + num_scenes]``.
        num_input, num_target: Vi and Vt per sample.
        span: window length in frames (default: the whole clip, ``synth.frames``).
        protocols: subset of ``("even", "random")``.
        seed: seed of the ``random`` protocol.
    Returns:
        ``{protocol: [EvalSample, …]}`` in seed order; samples carry ground-truth ``c2w`` (world
        frame of the clip), pixel ``K``, the exact z-depth ``depth`` (the renderer's, the
        convention of the models' depth) and ``frame_index`` = frame numbers in the clip.
    """
    synth.validate()
    frames = int(synth.frames)
    span = frames if span is None else int(span)
    if not num_input + num_target <= span <= frames:
        raise ValueError(
            f"test-set span must satisfy views ({num_input + num_target}) <= span <= frames per "
            f"clip ({frames}), got {span}"
        )
    if num_scenes < 1 or first < 0 or first + num_scenes > len(TEST_SEEDS):
        raise ValueError(
            f"num_scenes must be in [1, {len(TEST_SEEDS) - first}] (test seeds), got {num_scenes}"
        )
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown or not protocols:
        raise ValueError(f"unknown protocol(s) {unknown or protocols}; choose from {PROTOCOLS}")

    sets: dict[str, list[EvalSample]] = {p: [] for p in protocols}
    for clip_seed in TEST_SEEDS[first : first + num_scenes]:
        name = scene_name(synth.family, clip_seed)
        splits = {
            p: protocol_split(p, frames, num_input, num_target, span, seed, name) for p in protocols
        }
        needed = sorted(set().union(*(s.views for s in splits.values())))
        clip = render_clip(clip_seed, synth, frames=needed)
        where = {f: i for i, f in enumerate(needed)}
        for p, split in splits.items():
            rows = torch.tensor([where[f] for f in split.views])
            inp, tgt = split.positions()
            sets[p].append(
                EvalSample(
                    images=clip.images[rows],
                    input_index=torch.tensor(inp),
                    target_index=torch.tensor(tgt),
                    frame_index=clip.index[rows],
                    c2w=clip.c2w[rows],
                    K=clip.K[rows],
                    name=name,
                    depth=clip.depth[rows],
                )
            )
    return sets


def gt_rotation_stats(samples: Sequence[EvalSample]) -> dict[str, Any]:
    """Ground-truth relative rotation between the views of each sample (all pairs i < j).

    Returns:
        ``median_deg`` over all pairs of all samples (the identity-pose baseline's median
        rotation error), ``min_sample_median_deg`` and ``per_sample_median_deg``.
    """
    per_sample = []
    pooled = []
    for s in samples:
        if s.c2w is None:
            raise ValueError(f"sample {s.name!r} has no ground-truth cameras")
        gt = s.c2w.double()[None]
        rot = relative_pose_errors(torch.eye(4, dtype=gt.dtype).expand_as(gt), gt)["rot_deg"]
        pooled.append(rot.flatten())
        per_sample.append(rot.median().item())
    all_pairs = torch.cat(pooled)
    return {
        "median_deg": all_pairs.median().item(),
        "min_sample_median_deg": min(per_sample),
        "per_sample_median_deg": per_sample,
    }
