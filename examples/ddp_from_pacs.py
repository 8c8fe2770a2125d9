"""DDP training from a PACS: every process reads the same DICOMweb datalist, one shared instance cache.

    MONAI_DICOMSEG_DICOMWEB_USERNAME=... MONAI_DICOMSEG_DICOMWEB_PASSWORD=... \\
    torchrun --standalone --nproc_per_node=2 examples/ddp_from_pacs.py \\
        --url https://pacs.example.org/dicom-web --cache /scratch/dicomweb-cache

* rank 0 asks the server for the datalist (``create_datalist_from_server``, bounded concurrent QIDO/WADO
  metadata requests) and broadcasts it; every rank registers the server (credentials from the environment);
* ``DistributedSampler`` gives each rank its part; every rank loads through the same ``--cache`` folder,
  whose per-series cross-process locks make each series travel once even when two ranks want it together,
  and whose verified entries make later epochs request nothing;
* a tiny 3D network in ``DistributedDataParallel`` (gloo on CPU, nccl on GPUs).

``--report DIR`` writes ``rank<N>.json`` (items seen per epoch, label voxels, losses) for checks.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="DICOMweb service root")
    parser.add_argument("--cache", required=True, help="instance cache shared by all ranks (one file system)")
    parser.add_argument("--patient-id", help="QIDO-RS PatientID filter")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--shuffle", action="store_true", help="shuffle per epoch (DistributedSampler)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per rank")
    parser.add_argument("--max-workers", type=int, default=8, help="DICOMweb requests in flight for the datalist")
    parser.add_argument("--report", help="folder for rank<N>.json")
    return parser.parse_args()


def datalist_for_all_ranks(server, args, rank: int) -> list:
    import torch.distributed as dist

    from monai_dicomseg.dicomweb import create_datalist_from_server, register_server

    holder = [None]
    if rank == 0:
        holder[0] = create_datalist_from_server(server, patient_id=args.patient_id, max_workers=args.max_workers)
    dist.broadcast_object_list(holder, src=0)
    register_server(server)  # the URIs resolve with these credentials and this cache on every rank
    return holder[0]


def main() -> None:
    import torch
    import torch.distributed as dist
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    from monai_dicomseg.dicomweb import DicomWebServer
    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    args = parse()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    server = DicomWebServer.from_env(args.url, cache_dir=args.cache)
    datalist = datalist_for_all_ranks(server, args, rank)
    transform = Compose([LoadDicomSeriesd(keys="image"), LoadDicomSegd(keys="label", ref_key="image", mode="labelmap")])
    dataset = Dataset(datalist, transform=transform)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=args.shuffle, seed=0)
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=args.workers)
    model = DistributedDataParallel(torch.nn.Conv3d(1, 3, kernel_size=3, padding=1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    report = {"rank": rank, "world": world, "items": len(datalist), "epochs": []}
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        seen = []
        for batch in loader:
            image = batch["image"].float() / 1000.0
            label = batch["label"].long()[:, 0]
            loss = torch.nn.functional.cross_entropy(model(image), label.clamp(max=2))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append({"seg_series": batch["seg_series_instance_uid"][0], "voxels": int((label > 0).sum()),
                         "loss": float(loss)})
        report["epochs"].append(seen)
    if args.report:
        Path(args.report).mkdir(parents=True, exist_ok=True)
        (Path(args.report) / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        print(f"trained {args.epochs} epoch(s) on {len(datalist)} item(s) with {world} process(es); "
              f"cache {os.path.abspath(args.cache)}")


if __name__ == "__main__":
    main()
