"""DDP from a PACS (issue 27): two torchrun processes (gloo, CPU) train from a DICOMweb datalist with
DistributedSampler, sharing one cache: every series is retrieved once (counted by a proxy), the cache verifies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dicomweb_proxy import CountingProxy
from monai_dicomseg.dicomweb.cache import InstanceCache
from pacs_studies import upload_studies, write_studies

# torchrun + torch.distributed: deselected by `make test-light` (-m "not monai"), run by `make test`
pytestmark = pytest.mark.monai
REPO = Path(__file__).resolve().parents[2]
PATIENT = "H18-DDP"


def test_two_process_ddp_from_orthanc_fetches_each_series_once(orthanc, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    # 3 studies with 2 SEGs on one CT each: items 0/1, 2/3, 4/5 share a CT and go to ranks 0 and 1 together
    studies = write_studies(tmp_path / "studies", 3, PATIENT, shape=(4, 16, 16), seed=7, segs_per_study=2)
    upload_studies(orthanc.server(cache_dir=str(tmp_path / "upload-cache")), studies)
    cache, report = tmp_path / "cache", tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MONAI_DICOMSEG_DICOMWEB_TOKEN")}
    env.update(MONAI_DICOMSEG_DICOMWEB_USERNAME=orthanc.username, MONAI_DICOMSEG_DICOMWEB_PASSWORD=orthanc.password,
               OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    with CountingProxy(orthanc.url) as proxy:
        result = subprocess.run(
            [str(torchrun), "--standalone", "--nproc_per_node=2", str(REPO / "examples" / "ddp_from_pacs.py"),
             "--url", proxy.url, "--cache", str(cache), "--patient-id", PATIENT, "--epochs", "2",
             "--report", str(report)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((report / f"rank{r}.json").read_text()) for r in (0, 1)]
    voxels = {seg["series_uid"]: study["voxels"] for study in studies for seg in study["segs"]}
    for epoch in (0, 1):
        seen = [item for rank in ranks for item in rank["epochs"][epoch]]
        assert sorted(i["seg_series"] for i in seen) == sorted(voxels), "each item once per epoch over the ranks"
        assert all(i["voxels"] == voxels[i["seg_series"]] for i in seen), "labels as stored"
    for study in studies:  # every series crossed the network once, for both ranks and both epochs
        for series in [study["series_uid"], *(seg["series_uid"] for seg in study["segs"])]:
            retrievals = [p for m, p in proxy.requests if m == "GET" and f"/series/{series}" in p
                          and not p.endswith("/metadata")]
            assert len(retrievals) == 1, (series, retrievals)
    instances = InstanceCache(str(cache))
    for study in studies:
        for path in study["ct_files"]:
            import pydicom

            uid = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            assert instances.get(uid) is not None, "cached and verified (size + SHA-256)"
