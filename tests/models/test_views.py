"""``rayzer.models.views``: a view selection out of range is refused (``as_view_index``), in eager mode
with the indices named, and inside a compiled graph without splitting it; the pair input of
E-RayZer and NAS3R (``with_change_from``)."""

from __future__ import annotations

import pytest
import torch

from rayzer.models.baselines import CopyNearest
from rayzer.models.views import as_view_index, with_change_from


@pytest.mark.parametrize(
    ("index", "named"),
    [([0, 4], "[[0, 4]]"), ([-1, 2], "[[-1, 2]]"), (torch.tensor([[0, 4]]), "[[0, 4]]")],
)
def test_an_index_out_of_range_is_refused_with_the_indices(index, named):
    with pytest.raises(ValueError) as err:
        as_view_index(index, 1, 4)
    assert str(err.value) == f"view index out of range for 4 views: {named}"


def test_an_index_out_of_range_is_refused_inside_a_compiled_graph(monkeypatch):
    """Under ``torch.compile`` the check runs in the graph (``torch._assert_async``) and fails
    the call with the same words; run here eagerly with dynamo's ``is_compiling`` switched on
    (a real compile takes half a minute)."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with pytest.raises(RuntimeError, match="view index out of range for 4 views"):
        as_view_index(torch.tensor([[0, 4]]), 1, 4)
    with pytest.raises(RuntimeError, match="view index out of range for 4 views"):
        as_view_index(torch.tensor([[-1, 2]]), 1, 4)
    assert as_view_index(torch.tensor([[0, 3]]), 1, 4).tolist() == [[0, 3]]


def test_a_model_forward_compiles_without_graph_breaks_at_the_range_check():
    """The range check of the view indices was data-dependent Python control flow: three graph
    breaks in every model forward under ``torch.compile`` (two calls). Copy-nearest is the
    smallest model forward with both calls."""
    images = torch.rand(1, 4, 3, 8, 8)
    explained = torch._dynamo.explain(CopyNearest())(
        images, torch.tensor([[0, 2]]), torch.tensor([[1, 3]]), torch.tensor([[0, 1, 2, 3]])
    )
    assert explained.graph_break_count == 0, explained.break_reasons


def test_with_change_from_a_shared_or_a_per_sample_reference():
    images = torch.rand(2, 3, 3, 4, 5)
    shared = with_change_from(images, 1)
    assert shared.shape == (2, 3, 6, 4, 5)
    torch.testing.assert_close(shared[:, :, :3], images, rtol=0, atol=0)
    torch.testing.assert_close(shared[:, :, 3:], images - images[:, 1:2], rtol=0, atol=0)
    per_sample = with_change_from(images, torch.tensor([2, 0]))
    for b, r in enumerate((2, 0)):
        torch.testing.assert_close(per_sample[b, :, 3:], images[b] - images[b, r], rtol=0, atol=0)
    assert per_sample[0, 2, 3:].abs().max() == 0 and per_sample[1, 0, 3:].abs().max() == 0
