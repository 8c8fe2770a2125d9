"""create_datalist -> DicomSegDataset -> DataLoader / CacheDataset / PersistentDataset / DDP shards."""
from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest
import torch
from monai.data import CacheDataset, DataLoader, PersistentDataset
from monai.networks.nets import UNet

from monai_dicomseg import DicomSegDataset, create_datalist
from monai_dicomseg.data.dataset import collate_skip_none
from monai_dicomseg.errors import InputError
from monai_cases import make_case, truth_on_grid

SHAPE = (8, 16, 16)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    cases = [make_case(root / f"patient{i}", shape=SHAPE, seed=i, shuffle_instance_numbers=(i == 1),
                       writer="highdicom" if i == 2 else "ours") for i in range(4)]
    (root / "notes.txt").write_text("not dicom")
    (root / "broken.dcm").write_bytes(b"\x00" * 200)
    return root, cases


def test_create_datalist(tree):
    root, cases = tree
    with pytest.warns(UserWarning, match="not paired"):
        datalist, unpaired = create_datalist(root, return_unpaired=True)
    assert [d["label"] for d in datalist] == sorted(str(c.seg_path) for c in cases)
    for entry, case in zip(datalist, sorted(cases, key=lambda c: str(c.seg_path))):
        # the series folder also holds nothing else: the folder itself is the image
        assert entry["image"] == str(case.series_folder)
        assert entry["series_instance_uid"] == case.datasets[0].SeriesInstanceUID
        assert entry["paired_by"] == "ReferencedSeriesSequence"
    assert [u["kind"] for u in unpaired] == ["unreadable"]
    files = create_datalist(root, image_as="files", warn_unpaired=False)
    assert len(files[0]["image"]) == SHAPE[0]
    with pytest.raises(InputError, match="root must be an existing folder"):
        create_datalist(root / "missing")


def test_unpaired_seg_and_series(tmp_path):
    lonely = make_case(tmp_path / "a", shape=SHAPE)
    other = make_case(tmp_path / "b", shape=SHAPE, seed=3)
    for path in other.series_folder.iterdir():
        path.unlink()
    with pytest.warns(UserWarning, match="not found under root"):
        datalist, unpaired = create_datalist(tmp_path, return_unpaired=True)
    assert [d["label"] for d in datalist] == [str(lonely.seg_path)]
    assert {u["kind"] for u in unpaired} == {"seg"}


def test_dataset_cache_persistent_and_workers(tree, tmp_path):
    root, cases = tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = DicomSegDataset(root)
    item = dataset[1]
    image, label = item["image"], item["label"]
    assert image.shape == label.shape and torch.allclose(image.affine, label.affine)
    case = next(c for c in cases if str(c.seg_path) == dataset.data[1]["label"])
    truth = truth_on_grid(case.labels, case.datasets, np.asarray(image.affine), tuple(image.shape[1:]))
    np.testing.assert_array_equal(np.asarray(label[0]), truth)
    cached = CacheDataset(dataset.data, dataset.transform, progress=False)
    persistent = PersistentDataset(dataset.data, dataset.transform, cache_dir=tmp_path / "cache")
    for other in (cached, persistent, persistent):
        assert torch.equal(other[1]["label"], label)
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["label"].shape == (2, 1, 16, 16, 8)


def test_short_training_loop(tree):
    root, _ = tree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = DicomSegDataset(root, label_map={"liver": 1, "spleen": 2, "kidney": 3})
    loader = DataLoader(dataset, batch_size=2, num_workers=2, shuffle=True)
    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=4, channels=(4, 8), strides=(2,), num_res_units=0)
    optimiser = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(2):
        for batch in loader:
            image = (batch["image"].as_tensor() + 1000.0) / 1000.0
            target = batch["label"].as_tensor()[:, 0].long()
            loss = torch.nn.functional.cross_entropy(net(image), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss))
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_skip_none_collate(tree, tmp_path):
    root, _ = tree
    datalist = create_datalist(root, warn_unpaired=False)
    datalist[0] = {**datalist[0], "label": str(tmp_path / "gone.dcm")}
    dataset = DicomSegDataset(datalist, on_error="skip")
    with pytest.warns(UserWarning, match="skipped"):
        batch = collate_skip_none([dataset[0], dataset[1]])
    assert batch["label"].shape[0] == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, datalist: list, out: str) -> None:
    import torch.distributed as dist
    from monai.data import DistributedSampler

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = DicomSegDataset(datalist)
        sampler = DistributedSampler(dataset, shuffle=False)
        seen = [batch["label"].meta["filename_or_obj"][0]
                for batch in DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=0)]
        gathered: list = [None] * world
        dist.all_gather_object(gathered, seen)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def test_distributed_disjoint_shards(tree, tmp_path):
    root, _ = tree
    datalist = create_datalist(root, warn_unpaired=False)
    out = str(tmp_path / "shards.pt")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), datalist, out), nprocs=2, join=True)
    shards = torch.load(out)
    assert len(shards) == 2 and all(len(s) == 2 for s in shards)
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(d["label"] for d in datalist)
