// Loads DICOM SEG files the way OHIF 3 does for a SEG instance it has as a file/ArrayBuffer:
// @cornerstonejs/adapters' adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer
// (dcmjs parses the file; the adapter decodes the frames, maps each one to its source image and
// paints Cornerstone3D labelmap images), with a metadata provider describing the source images.
//
// Usage: node decode.mjs MANIFEST.json
//   MANIFEST: {"cases": [{"id": str, "path": str, "sources": [source, ...]}, ...]} where a source is
//   {"image_id", "sop_instance_uid", "series_instance_uid", "frame_of_reference_uid", "rows",
//    "columns", "position": [x, y, z], "orientation": [6 direction cosines], "spacing": [row, column]}.
// Prints one JSON line per case, in manifest order:
//   {"id", "ok": true, "transfer_syntax", "segmentation_type", "frames": SEG frames in the file,
//    "overlapping": bool, "layers": [{image_id: base64 of the uint8 labelmap (rows * columns)}, ...],
//    "voxels": {segment number: labelled voxels over all layers}}
//   or {"id", "ok": false, "error": message}.
// Used by tests/seg/test_ohif_consumer.py (one node process for all cases); versions pinned in
// package.json / package-lock.json. Install: `npm ci` in this folder (.ci/install-services does it).
import fs from 'node:fs';
import { adaptersSEG } from '@cornerstonejs/adapters';
import { metaData } from '@cornerstonejs/core';
import { data as dcmjsData } from 'dcmjs';

const { createFromDICOMSegBuffer } = adaptersSEG.Cornerstone3D.Segmentation;

// image_id -> {type -> module}; one provider, reset per case.
let modules = new Map();

function describeSource(source) {
  const [rowSpacing, columnSpacing] = source.spacing;
  const orientation = source.orientation.map(Number);
  const plane = {
    frameOfReferenceUID: source.frame_of_reference_uid,
    rows: source.rows,
    columns: source.columns,
    imageOrientationPatient: orientation,
    rowCosines: orientation.slice(0, 3),
    columnCosines: orientation.slice(3, 6),
    imagePositionPatient: source.position.map(Number),
    pixelSpacing: [rowSpacing, columnSpacing],
    rowPixelSpacing: rowSpacing,
    columnPixelSpacing: columnSpacing,
    sliceThickness: 1,
  };
  const instance = {
    SOPInstanceUID: source.sop_instance_uid,
    SeriesInstanceUID: source.series_instance_uid,
    FrameOfReferenceUID: source.frame_of_reference_uid,
    Rows: source.rows,
    Columns: source.columns,
    ImagePositionPatient: plane.imagePositionPatient,
    ImageOrientationPatient: orientation,
    PixelSpacing: plane.pixelSpacing,
  };
  return {
    imagePlaneModule: plane,
    generalSeriesModule: { seriesInstanceUID: source.series_instance_uid, modality: 'CT' },
    generalImageModule: { sopInstanceUID: source.sop_instance_uid },
    imagePixelModule: {
      bitsAllocated: 16, bitsStored: 16, highBit: 15, pixelRepresentation: 1, samplesPerPixel: 1,
      photometricInterpretation: 'MONOCHROME2', rows: source.rows, columns: source.columns,
    },
    instance,
  };
}

const provider = { get: (type, imageId) => modules.get(imageId)?.[type] };
metaData.addProvider((type, imageId) => provider.get(type, imageId), 10000);

function labelmapValues(image) {
  const manager = image.voxelManager;
  if (manager && typeof manager.getScalarData === 'function') {
    try {
      return Uint8Array.from(manager.getScalarData());
    } catch (error) {
      // RLE-backed voxel managers have no flat scalar array; read voxel by voxel below.
    }
  }
  if (manager) {
    const values = new Uint8Array(image.rows * image.columns);
    for (let index = 0; index < values.length; index++) {
      values[index] = manager.getAtIndex(index) ?? 0;
    }
    return values;
  }
  return Uint8Array.from(image.getPixelData());
}

function parseHeader(bytes) {
  const message = dcmjsData.DicomMessage.readFile(bytes, { untilTag: '7FE00010' });
  const dataset = dcmjsData.DicomMetaDictionary.naturalizeDataset(message.dict);
  return {
    transferSyntax: message.meta['00020010']?.Value?.[0],
    segmentationType: dataset.SegmentationType,
    frames: Number(dataset.NumberOfFrames) || 1,
  };
}

async function decodeCase(entry) {
  const out = { id: entry.id, ok: false };
  try {
    modules = new Map(entry.sources.map(source => [source.image_id, describeSource(source)]));
    const file = fs.readFileSync(entry.path);
    const buffer = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength);
    Object.assign(out, (({ transferSyntax, segmentationType, frames }) => ({
      transfer_syntax: transferSyntax, segmentation_type: segmentationType, frames,
    }))(parseHeader(buffer.slice(0))));
    const imageIds = entry.sources.map(source => source.image_id);
    const result = await createFromDICOMSegBuffer(imageIds, buffer, { metadataProvider: provider });
    out.overlapping = Boolean(result.overlappingSegments);
    out.layers = [];
    out.voxels = {};
    for (const layer of result.labelMapImages) {
      const encoded = {};
      for (const image of layer) {
        const values = labelmapValues(image);
        encoded[image.referencedImageId] = Buffer.from(values.buffer, values.byteOffset, values.byteLength)
          .toString('base64');
        for (const value of values) {
          if (value) out.voxels[value] = (out.voxels[value] ?? 0) + 1;
        }
      }
      out.layers.push(encoded);
    }
    out.ok = true;
  } catch (error) {
    out.error = String((error && error.message) || error).slice(0, 500);
  }
  return out;
}

const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const entry of manifest.cases) {
  process.stdout.write(`${JSON.stringify(await decodeCase(entry))}\n`);
}
