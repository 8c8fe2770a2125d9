"""Benchmark: training items/s from a DICOMweb server (cold and warm cache) vs local files; STOW per SEG.

Run: ``python benchmarks/dicomweb.py`` (``--small`` for a quick run). Starts a
throwaway Orthanc + DICOMweb on loopback (Debian ``orthanc`` and
``orthanc-dicomweb``), uploads ``--cases`` synthetic CT series with one SEG
each, and times one pass of ``LoadDicomSeriesd`` + ``LoadDicomSegd`` over the
datalist:

* local files (``create_datalist`` of the uploaded folders);
* from the server, cold cache (every instance retrieved over WADO-RS);
* from the server, warm cache (no request: the verified local cache);

then STOW-RS of each SEG (with the check that the server holds it). Prints
items/s and the ratios to local loading. Loopback numbers: a real PACS adds
network latency to the cold figure only.

``--datalist-studies N`` (issue 27) instead uploads N small studies (a
3-slice CT and one SEG each) and times ``create_datalist_from_server`` with
``max_workers=1`` (sequential) against ``--max-workers`` (default 8), checking
that both datalists are equal; ``--latency-ms`` puts a loopback proxy adding
that delay to every request in front of the server (a PACS across a network).

Measured with 1,000 studies (``--datalist-studies 1000``, 8 workers; 2 shared
cores, load around 10 from other jobs; datalists equal):

* loopback: sequential 82.6 s, ``max_workers=8`` 68.9 s (1.2x: CPU-bound,
  client JSON parsing and Orthanc share the two cores);
* ``--latency-ms 20``: sequential 305.9 s, ``max_workers=8`` 79.0 s (3.9x;
  the latency is hidden, what remains is the loopback CPU cost).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

import monai_dicomseg as mds  # noqa: E402
from monai_dicomseg import synthetic  # noqa: E402


def _seg(ct, labels, n_segments):
    from pydicom.sr.codedict import codes

    descriptions = [mds.seg.SegmentDescription(
        segment_number=n, segment_label=f"organ {n}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="MANUAL") for n in range(1, n_segments + 1)]
    return mds.seg.Segmentation(
        source_images=ct, pixel_array=labels, segmentation_type="BINARY", segment_descriptions=descriptions,
        series_instance_uid=mds.UID(), series_number=2, sop_instance_uid=mds.UID(), instance_number=1,
        manufacturer="bench", manufacturer_model_name="bench", software_versions="0", device_serial_number="0")


def _pass(datalist, transform) -> float:
    start = time.perf_counter()
    for item in datalist:
        out = transform(dict(item))
        assert out["label"].shape[1:] == out["image"].shape[1:]
    return time.perf_counter() - start


def _selected_segment_load(tmp_path: Path, orthanc, shape) -> "list[tuple[float, int]]":
    """Cold-cache load of segment 7 of a 20-segment FRACTIONAL SEG: whole instance vs its frames only.

    Returns ``[(seconds, bytes cached) whole, (seconds, bytes cached) frames]``. The whole-instance
    figure is what the loader does when a server refuses frames: retrieve the instance, then decode
    the one segment from the cached file."""
    from monai_dicomseg.dicomweb import DicomWebSeries, materialize, store
    from monai_dicomseg.io.segload import load_seg_array

    labels = synthetic.make_ellipsoid_labels(shape, n_labels=20, seed=99)
    ct = synthetic.make_ct_series(shape, labels=labels, seed=99)
    soft = np.stack([(labels == n).astype(np.float32) * np.float32(0.9) for n in range(1, 21)], axis=-1)
    from pydicom.sr.codedict import codes

    descriptions = [mds.seg.SegmentDescription(
        segment_number=n, segment_label=f"organ {n}", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type="AUTOMATIC",
        algorithm_identification=mds.AlgorithmIdentificationSequence(
            name="bench", family=codes.cid7162.ArtificialIntelligence, version="0"))
        for n in range(1, 21)]
    seg = mds.seg.Segmentation(
        source_images=ct, pixel_array=soft, segmentation_type="FRACTIONAL", segment_descriptions=descriptions,
        series_instance_uid=mds.UID(), series_number=3, sop_instance_uid=mds.UID(), instance_number=1,
        manufacturer="bench", manufacturer_model_name="bench", software_versions="0", device_serial_number="0")
    path = tmp_path / "fractional.dcm"
    seg.save_as(path)
    results = []
    for name, refuse in (("whole", True), ("frames", False)):
        server = orthanc.server(cache_dir=str(tmp_path / f"cache-{name}"))
        store(path, server)
        reference = DicomWebSeries(server.url, str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID),
                                   str(seg.SOPInstanceUID), server=server)
        start = time.perf_counter()
        load_seg_array(materialize(reference)[0] if refuse else reference, mode="stacked", segment_numbers=[7])
        seconds = time.perf_counter() - start
        cached = sum(f.stat().st_size for f in (tmp_path / f"cache-{name}" / "instances").rglob("*.dcm"))
        results.append((seconds, cached))
    return results


def _datalist_benchmark(studies: int, max_workers: int, latency_ms: float) -> None:
    """Time create_datalist_from_server sequentially and with ``max_workers`` requests in flight."""
    from dicomweb_proxy import CountingProxy
    from pacs_studies import upload_studies, write_studies

    from monai_dicomseg.dicomweb import DicomWebServer, create_datalist_from_server, unregister_server
    from monai_dicomseg.dicomweb.orthanc import start_orthanc

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        found = write_studies(tmp_path / "studies", studies, "BENCH-DATALIST")
        print(f"{studies} studies written in {time.perf_counter() - start:.1f} s", flush=True)
        with start_orthanc(tmp_path / "orthanc") as orthanc:
            start = time.perf_counter()
            upload_studies(orthanc.server(cache_dir=str(tmp_path / "upload-cache")), found)
            print(f"uploaded ({4 * studies} instances) in {time.perf_counter() - start:.1f} s", flush=True)
            with CountingProxy(orthanc.url, delay_s=latency_ms / 1000.0) as proxy:
                url = proxy.url if latency_ms else orthanc.url
                times, results = {}, {}
                for workers in (1, max_workers):
                    server = DicomWebServer(url, username=orthanc.username, password=orthanc.password,
                                            cache_dir=str(tmp_path / f"cache-{workers}"))
                    start = time.perf_counter()
                    results[workers] = create_datalist_from_server(server, max_workers=workers)
                    times[workers] = time.perf_counter() - start
                    unregister_server(server.url)
        assert results[1] == results[max_workers] and len(results[1]) == studies
        where = f"loopback + {latency_ms:g} ms per request" if latency_ms else "loopback"
        print(f"create_datalist_from_server, {studies} studies ({where}): sequential {times[1]:.2f} s, "
              f"max_workers={max_workers} {times[max_workers]:.2f} s -> {times[1] / times[max_workers]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="4 cases of 32 x 64 x 64 (default: 8 of 64 x 128 x 128)")
    parser.add_argument("--cases", type=int)
    parser.add_argument("--datalist-studies", type=int, metavar="N",
                        help="only the datalist benchmark, on N studies (the issue's case: 1000)")
    parser.add_argument("--max-workers", type=int, default=8, help="requests in flight for the concurrent datalist")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request (proxy)")
    args = parser.parse_args()
    if args.datalist_studies:
        _datalist_benchmark(args.datalist_studies, args.max_workers, args.latency_ms)
        return
    shape = (32, 64, 64) if args.small else (64, 128, 128)
    cases = args.cases or (4 if args.small else 8)

    from monai.transforms import Compose

    from monai_dicomseg.data.datalist import create_datalist
    from monai_dicomseg.dicomweb import create_datalist_from_server, store, unregister_server
    from monai_dicomseg.dicomweb.orthanc import start_orthanc
    from monai_dicomseg.transforms.load import LoadDicomSegd
    from monai_dicomseg.transforms.load_series import LoadDicomSeriesd

    transform = Compose([LoadDicomSeriesd(keys="image"), LoadDicomSegd(keys="label", ref_key="image")])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        segs, files = [], []
        for case in range(cases):
            labels = synthetic.make_ellipsoid_labels(shape, n_labels=5, seed=case)
            ct = synthetic.make_ct_series(shape, labels=labels, seed=case)
            files += synthetic.write_series(ct, tmp_path / "local" / f"case{case}" / "ct")
            seg = _seg(ct, labels, 5)
            path = tmp_path / "local" / f"case{case}" / "seg.dcm"
            seg.save_as(path)
            segs.append(path)
        local = create_datalist(tmp_path / "local", warn_unpaired=False)
        instances = len(files) + len(segs)
        print(f"{cases} cases of {shape[0]} x {shape[1]} x {shape[2]} CT + one 5-segment BINARY SEG "
              f"({instances} instances, {sum(p.stat().st_size for p in [*files, *segs]) / 1e6:.1f} MB)")
        with start_orthanc(tmp_path / "orthanc") as orthanc:
            upload = orthanc.server(cache_dir=str(tmp_path / "upload-cache"))
            start = time.perf_counter()
            store(files, upload, verify=False)
            print(f"upload of the CT (STOW-RS, one instance per request): "
                  f"{len(files) / (time.perf_counter() - start):.0f} instances/s")
            t_local = min(_pass(local, transform) for _ in range(2))
            server = orthanc.server(cache_dir=str(tmp_path / "cache"))
            start = time.perf_counter()
            stow = [store(path, server) for path in segs]
            t_stow = (time.perf_counter() - start) / len(stow)
            remote = create_datalist_from_server(server)
            assert len(remote) == cases, remote
            t_cold = _pass(remote, transform)
            t_warm = min(_pass(remote, transform) for _ in range(2))
            unregister_server(server.url)
            frames_figures = _selected_segment_load(tmp_path, orthanc, (96, 256, 256))
        rate = lambda seconds: cases / seconds  # noqa: E731
        print(f"local files          : {rate(t_local):7.2f} items/s")
        print(f"DICOMweb, cold cache : {rate(t_cold):7.2f} items/s   ({t_cold / t_local:.2f}x the local time)")
        print(f"DICOMweb, warm cache : {rate(t_warm):7.2f} items/s   ({t_warm / t_local:.2f}x the local time)")
        print(f"STOW-RS per SEG      : {t_stow * 1000:7.1f} ms (store + check that the server holds it)")
        whole, selected = frames_figures
        print(f"one segment of a 20-segment 96 x 256 x 256 FRACTIONAL SEG, cold cache: whole instance {whole[0] * 1000:.0f} ms / "
              f"{whole[1] / 1e6:.1f} MB cached, selected frames (WADO-RS /frames/) {selected[0] * 1000:.0f} ms / "
              f"{selected[1] / 1e6:.1f} MB cached")
        assert np.isfinite([t_local, t_cold, t_warm]).all()


if __name__ == "__main__":
    main()
