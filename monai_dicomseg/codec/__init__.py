"""The SEG encoder and decoder on pydicom + numpy only (no torch, no MONAI).

Map of this folder:

* ``raw.py``               Explicit VR Little Endian encoding of elements, items and sequences
* ``vr.py``                every value that leaves the package is valid for its VR
* ``functional_groups.py`` per-frame functional groups, encoded directly as bytes
* ``spatial_content.py``   Plane Position / Plane Orientation / Pixel Measures sequences
* ``bitpack.py``           1-bit packing of BINARY frames (the one caller of np.packbits/unpackbits)
* ``pixel_data.py``        native Pixel Data of SEG frames
* ``compression.py``       lossless frame compression (RLE, JPEG-LS, JPEG 2000)
* ``element_scan.py``      bounded scanner of little-endian element streams (hostile-input checks)
* ``frame_index.py``       columnar index of a SEG's frames (``FrameIndex``)
* ``decode.py``            frame-wise access to the Pixel Data of a SEG
* ``assemble.py``          output masks from stored frames (``FramePlacement``, ``assemble_frames``)
* ``tiled_region.py``      regions of the total pixel matrix of a tiled SEG
"""
