"""The writer's ``labels`` contract: every labels form x every output kind.

Unit level on :func:`plan_output_segments` (which label value / channel becomes which
segment, by name) plus end-to-end checks through ``SaveDicomSegd`` with a
bundle's ``channel_def`` (string keys) read back by segment label.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.errors import InputError
from monai_dicomseg.io import prediction
from monai_dicomseg.io.prediction import is_background_name, is_channel_partition
from monai_dicomseg.seg.content import AlgorithmIdentificationSequence
from monai_dicomseg.sr.coding import CodedConcept

ALGORITHM = AlgorithmIdentificationSequence(name="test", family=CodedConcept("123110", "DCM", "Artificial Intelligence"),
                                            version="1")


def plan_output_segments(*args, **kwargs):
    return prediction.plan_output_segments(*args, algorithm_identification=ALGORITHM, **kwargs)

CHANNEL_DEF = {"0": "background", "1": "liver", "2": "spleen"}


def named(plan) -> dict[int, str]:
    """source value/channel -> segment label."""
    return dict(zip(plan.sources, plan.labels))


# --------------------------------------------------------------------------- label outputs (argmax)


@pytest.mark.parametrize("labels", [
    ["liver", "spleen"],
    ["background", "liver", "spleen"],
    ["Background", "liver", "spleen"],
    ["_background_", "liver", "spleen"],
    {1: "liver", 2: "spleen"},
    {0: "background", 1: "liver", 2: "spleen"},
    {"1": "liver", "2": "spleen"},
    CHANNEL_DEF,
], ids=["list", "list_bg", "list_Bg", "list__bg_", "int_keys", "int_keys_bg", "str_keys", "channel_def"])
def test_label_output_every_form_names_the_same_values(labels):
    plan = plan_output_segments("labels", 1, labels, present=[0, 1, 2])
    assert named(plan) == {1: "liver", 2: "spleen"}
    assert plan.background is None
    assert [int(d.SegmentNumber) for d in plan.descriptions] == [1, 2]


def test_label_output_list_with_background_no_longer_shifts():
    """The old silent shift: liver voxels were saved as 'background', spleen as 'liver'."""
    plan = plan_output_segments("labels", 1, ["background", "liver", "spleen"], present=[0, 1, 2])
    assert "background" not in [label.lower() for label in plan.labels]
    assert named(plan)[1] == "liver"


def test_label_output_without_labels_generic_names():
    plan = plan_output_segments("labels", 1, None, present=[0, 2, 5])
    assert plan.sources == [2, 5]


@pytest.mark.parametrize("labels, message", [
    (["liver", "spleen"], r"label values 1\.\.3 but labels names 2"),
    (["background", "liver", "spleen"], r"label values 1\.\.3 but labels names 2"),
    (CHANNEL_DEF, r"label values 1\.\.3 but labels names 2"),
])
def test_label_output_unnamed_value(labels, message):
    with pytest.raises(InputError, match=message):
        plan_output_segments("labels", 1, labels, present=[0, 1, 2, 3])


def test_label_output_value_zero_is_not_a_segment():
    with pytest.raises(InputError, match="label value 0"):
        plan_output_segments("labels", 1, {0: "liver", 1: "spleen"}, present=[0, 1])
    with pytest.raises(InputError, match="first entry"):
        plan_output_segments("labels", 1, ["liver", "background"], present=[0, 1])


@pytest.mark.parametrize("labels, message", [
    ({"liver": 1}, "labels keys"),
    ({-1: "liver"}, "labels keys"),
    ({1: "liver", "1": "spleen"}, "twice"),
    (["background", "bg", "liver"], "more than once"),
    ({}, "empty"),
    ([], "empty"),
])
def test_bad_label_forms(labels, message):
    with pytest.raises(InputError, match=message):
        plan_output_segments("labels", 1, labels, present=[0, 1])


# --------------------------------------------------------------------------- channel outputs


@pytest.mark.parametrize("labels", [
    CHANNEL_DEF,
    {0: "background", 1: "liver", 2: "spleen"},
    {1: "liver", 2: "spleen"},
    ["background", "liver", "spleen"],
    ["liver", "spleen"],
], ids=["channel_def", "int_keys_bg", "int_keys", "list_bg", "list_short"])
@pytest.mark.parametrize("kind", ["onehot", "probabilities"])
def test_softmax_or_onehot_with_background(labels, kind):
    plan = plan_output_segments(kind, 3, labels, partition=True)
    assert plan.background == 0
    assert named(plan) == {1: "liver", 2: "spleen"}


def test_softmax_full_list_without_background_is_an_error():
    """The old silent shift: the background channel of a softmax was saved as 'liver'."""
    with pytest.raises(InputError, match="sum to 1.*names 3 channels without a 'background'"):
        plan_output_segments("probabilities", 3, ["liver", "spleen", "kidney"], partition=True)
    # saying so explicitly makes every channel a segment
    plan = plan_output_segments("probabilities", 3, ["liver", "spleen", "kidney"], partition=True, background=False)
    assert plan.background is None and plan.sources == [0, 1, 2]


def test_short_list_needs_known_background():
    with pytest.raises(InputError, match="3 channels but labels names 2.*background=0"):
        plan_output_segments("probabilities", 3, ["liver", "spleen"], partition=False)
    plan = plan_output_segments("probabilities", 3, ["liver", "spleen"], partition=False, background=0)
    assert named(plan) == {1: "liver", 2: "spleen"} and plan.background == 0
    plan = plan_output_segments("probabilities", 3, ["liver", "spleen"], partition=False, background=2)
    assert named(plan) == {0: "liver", 1: "spleen"} and plan.background == 2


def test_partition_is_only_computed_when_needed():
    calls = []

    def partition():
        calls.append(1)
        return True

    plan_output_segments("probabilities", 3, CHANNEL_DEF, partition=partition)
    plan_output_segments("probabilities", 3, None, partition=partition)
    assert not calls


@pytest.mark.parametrize("kind", ["onehot", "probabilities"])
def test_sigmoid_multilabel_full_list(kind):
    plan = plan_output_segments(kind, 3, ["liver", "tumor", "vessel"], partition=False)
    assert plan.background is None
    assert named(plan) == {0: "liver", 1: "tumor", 2: "vessel"}


@pytest.mark.parametrize("count", [1, 4, 5])
def test_wrong_list_length_names_both_counts(count):
    names = ["liver", "spleen", "kidney", "lung", "heart"][:count]
    with pytest.raises(InputError, match=f"3 channel\\(s\\) but labels names {count}"):
        plan_output_segments("probabilities", 3, names, partition=True)


def test_background_list_must_name_every_channel():
    with pytest.raises(InputError, match=r"3 channel\(s\) but labels names 2 \(including 'background'"):
        plan_output_segments("onehot", 3, ["background", "liver"], partition=True)


def test_background_name_anywhere_marks_the_channel():
    plan = plan_output_segments("probabilities", 3, ["liver", "spleen", "BG"], partition=True)
    assert plan.background == 2 and named(plan) == {0: "liver", 1: "spleen"}
    plan = plan_output_segments("probabilities", 3, {"2": "background", "0": "liver", "1": "spleen"})
    assert plan.background == 2 and named(plan) == {0: "liver", 1: "spleen"}


def test_background_name_conflicts_with_background_option():
    with pytest.raises(InputError, match="background=1"):
        plan_output_segments("probabilities", 3, CHANNEL_DEF, background=1)
    with pytest.raises(InputError, match="background=0"):
        plan_output_segments("probabilities", 3, ["liver", "spleen", "kidney"], background=0)


def test_keys_out_of_range():
    with pytest.raises(InputError, match="out of range"):
        plan_output_segments("probabilities", 2, CHANNEL_DEF)


def test_background_names():
    assert is_background_name("Background") and is_background_name(" _background_ ")
    assert is_background_name("BG") and not is_background_name("background tissue")
    assert not is_background_name("liver")


def test_is_channel_partition():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    softmax = np.exp(logits) / np.exp(logits).sum(0)
    assert is_channel_partition(softmax)
    assert not is_channel_partition(1 / (1 + np.exp(-logits)))
    onehot = (np.arange(3)[:, None, None, None] == rng.integers(0, 3, (1, 4, 5, 6))).astype(np.uint8)
    assert is_channel_partition(onehot)
    assert not is_channel_partition(onehot[:1])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), with_background=st.booleans(), dict_form=st.booleans(), str_keys=st.booleans())
def test_label_output_forms_agree(n, with_background, dict_form, str_keys):
    """Every labels form for a label output maps value v to the v-th organ name."""
    organs = ["liver", "spleen", "pancreas", "stomach", "aorta", "gallbladder"][:n]
    if dict_form:
        labels = {(str(v) if str_keys else v): name for v, name in enumerate(organs, start=1)}
        if with_background:
            labels["0" if str_keys else 0] = "background"
    else:
        labels = (["background"] if with_background else []) + organs
    plan = plan_output_segments("labels", 1, labels, present=list(range(n + 1)))
    assert named(plan) == {v: organs[v - 1] for v in range(1, n + 1)}


def test_public_names():
    import monai_dicomseg

    assert monai_dicomseg.is_background_name is is_background_name
    assert {"is_background_name", "remove_stale_temporaries", "SaveDicomSegd", "DicomSegWriter"} <= set(
        monai_dicomseg.__all__)


@settings(max_examples=40, deadline=None)
@given(c=st.integers(2, 6), form=st.sampled_from(["channel_def", "int_keys_bg", "list_bg", "keys", "short_list"]),
       background_at=st.integers(0, 5))
def test_softmax_forms_agree(c, form, background_at):
    """On a softmax / one-hot partition every labels form names channels the same way; background never written."""
    organs = ["liver", "spleen", "pancreas", "stomach", "aorta", "gallbladder"]
    b = background_at % c if form in ("channel_def", "int_keys_bg", "list_bg") else 0
    others = [ch for ch in range(c) if ch != b]
    names = {ch: organs[i] for i, ch in enumerate(others)}
    if form == "channel_def":
        labels = {str(b): "background", **{str(ch): n for ch, n in names.items()}}
    elif form == "int_keys_bg":
        labels = {b: "_background_", **names}
    elif form == "list_bg":
        labels = [names.get(ch, "Background") for ch in range(c)]
    elif form == "keys":
        labels = names
    else:
        labels = [names[ch] for ch in others]
    plan = plan_output_segments("probabilities", c, labels, partition=True)
    assert plan.background == b and named(plan) == names
